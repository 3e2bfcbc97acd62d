"""The `caxton` and `kubectl caxton` command lines: one command tree, two front doors.

Parsing imports only argparse (see `parser` and `verbs`); the chosen command's module
is imported after parsing, so `--help` and a simple command start fast.
"""

from __future__ import annotations

import importlib
import sys

from caxton_cli.parser import build


def run(argv: list[str], prog: str) -> int:
    from caxton_cli.errors import CommandError

    args = build(prog).parse_args(argv)
    module, _, function = args.run.partition(":")
    try:
        getattr(importlib.import_module(module), function)(args)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl caxton ... | head`
        sys.stderr.close()
        return 0
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:], "caxton"))


def kubectl_main() -> None:
    sys.exit(run(sys.argv[1:], "kubectl caxton"))
