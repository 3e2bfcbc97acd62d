"""`--watch`: look again every --interval seconds and print the answer whenever it
changed, until --timeout or Ctrl-C (the way `kubectl get -w` follows a resource)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from caxton_cli.errors import CommandError
from caxton_cli.output import View


def show(args: argparse.Namespace, look: Callable[[], View]) -> None:
    """Prints `look()` once, or with --watch again on every change."""
    if not getattr(args, "watch", False):
        look().emit(args.output)
        return
    deadline = time.monotonic() + args.timeout
    last: object = None
    failing = ""
    while True:
        try:
            view = look()
        except CommandError as err:  # a node restarting: say so once, keep watching
            if str(err) != failing:
                print(f"error: {err}", file=sys.stderr, flush=True)
                failing = str(err)
        else:
            failing = ""
            key = view.watch_key(args.output)
            if key != last:
                if last is not None and args.output == "table":
                    print()
                view.emit(args.output)
                sys.stdout.flush()
                last = key
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(args.interval, remaining))
