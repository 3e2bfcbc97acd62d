"""How a command is wired into the argparse tree: its help, its examples, the flags
every command shares, and its handler named as "module:function".

Naming the handler instead of importing it keeps the tree cheap to build: `--help`,
completion and the parse itself import no HTTP, YAML or Kubernetes code; only the
chosen handler's module is imported, after parsing (see `main.run`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Literal

Mode = Literal["direct", "kubectl"]
Parsers = argparse._SubParsersAction  # the `add_parser` side of a command group

FORMATS = ("table", "json", "yaml")


class Tree:
    """The front door being wired (`caxton` or `kubectl caxton`) and its shared flags."""

    def __init__(self, prog: str, mode: Mode) -> None:
        self.prog, self.mode = prog, mode

    @property
    def kubectl(self) -> bool:
        return self.mode == "kubectl"

    def global_flags(self, parser: argparse.ArgumentParser, *, on_root: bool) -> None:
        """The connection and output flags. On the root they carry the defaults; below it they
        default to SUPPRESS, so a flag given before the verb is not reset by the verb's parser.
        That is what lets `-n ns cluster members` and `cluster members -n ns` mean the same."""

        def default(value: object) -> object:
            return value if on_root else argparse.SUPPRESS

        flags = parser.add_argument_group("global flags (before or after the command)")
        if self.kubectl:
            flags.add_argument("-n", "--namespace", default=default(None),
                               help="namespace of the CaxtonCluster (default: the context's)")
            flags.add_argument("--cluster", default=default(None),
                               help="the CaxtonCluster (default: the only one in the namespace)")
            flags.add_argument("--node", default=default(None),
                               help="ask this node (pod) only, e.g. the minority side of a partition")
            flags.add_argument("--kubeconfig", default=default(None),
                               help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
            flags.add_argument("--context", default=default(None), help="kubeconfig context (default: current)")
        else:
            flags.add_argument("--api", default=default(os.environ.get("CAXTON_API", "http://127.0.0.1:8080")),
                               help="node API URL (default: $CAXTON_API or http://127.0.0.1:8080)")
            flags.add_argument("--token-file", default=default(os.environ.get("CAXTON_TOKEN_FILE")),
                               help="file holding the API bearer token (default: $CAXTON_TOKEN_FILE; "
                               "or $CAXTON_TOKEN)")
        flags.add_argument("-o", "--output", choices=FORMATS, default=default("table"),
                           help="table (default), json or yaml")

    def group(self, parent: Parsers, name: str, *, help: str, connects: bool = True,
              aliases: Sequence[str] = ()) -> Parsers:
        """A noun (`cluster`, `agents`): its verbs come from `verb` on what this returns."""
        parser = parent.add_parser(name, help=help, description=help, aliases=list(aliases))
        if connects:
            self.global_flags(parser, on_root=False)
        return parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    def verb(self, parent: Parsers, name: str, *, run: str, help: str, examples: Sequence[str],
             connects: bool = True, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        """A command. `run` is "module:function", called with the parsed arguments. `examples`
        are command lines without the program name (or with `{prog}` where it goes), each
        optionally preceded by a `# comment` line; they become the epilog of `--help`."""
        if not examples:
            raise ValueError(f"{name}: every command needs an example")
        lines = []
        for example in examples:
            for line in example.strip().splitlines():
                if line.startswith("#") or "{prog}" in line:
                    lines.append("  " + line.replace("{prog}", self.prog))
                else:
                    lines.append(f"  {self.prog} {line}")
            lines.append("")
        parser = parent.add_parser(name, help=help, description=help, aliases=list(aliases),
                                   epilog="examples:\n" + "\n".join(lines).rstrip(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   conflict_handler="resolve")  # a verb may redefine a global flag (then
        # give it default=argparse.SUPPRESS, or it resets the value given before the command)
        if connects:
            self.global_flags(parser, on_root=False)
        parser.set_defaults(run=run)
        return parser


def add_wait_flags(parser: argparse.ArgumentParser, timeout: float) -> None:
    """For commands that change a resource and wait for the operator to report the result."""
    parser.add_argument("--no-wait", action="store_true", help="return once the resource is changed")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds to wait (default: %(default)s)")


def add_watch_flags(parser: argparse.ArgumentParser) -> None:
    """For commands whose answer changes: print it again whenever it does."""
    parser.add_argument("-w", "--watch", action="store_true",
                        help="keep watching: print the answer again whenever it changes")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between looks (default: 2)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="with --watch, stop after this many seconds (default: 300)")
