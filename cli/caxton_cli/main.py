"""The `caxton` and `kubectl caxton` command lines: one parser, two front doors."""

from __future__ import annotations

import argparse
import sys

from caxton_cli import client, cluster_commands, local, node_commands, security, server
from caxton_cli.output import CommandError


def build_parser(prog: str) -> argparse.ArgumentParser:
    kubectl = prog.startswith("kubectl")
    client.FRONT_DOOR = "kubectl" if kubectl else "direct"
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Operate a CaxtonCluster through the Kubernetes API." if kubectl else "Operate Caxton nodes and clusters."))
    sub = parser.add_subparsers(dest="command", required=True)
    node_commands.register(sub)
    cluster_commands.register(sub)
    if not kubectl:  # these act on this machine, not on a CaxtonCluster
        server.register(sub)
        security.register(sub)
        local.register(sub)
    return parser


def run(argv: list[str], prog: str) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:], "caxton"))


def kubectl_main() -> None:
    sys.exit(run(sys.argv[1:], "kubectl caxton"))
