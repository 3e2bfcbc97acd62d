"""`caxton server start`: run a node (the container command of every Caxton pod)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from caxton_node.config import ConfigError, load_config_file

from caxton_cli.output import CommandError


def start(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config_file(args.config)
        updates: dict[str, object] = {}
        if args.node_id:
            updates["id"] = args.node_id
        if updates:
            config = config.model_copy(update={"node": config.node.model_copy(update=updates)})
        if args.join:
            cluster = config.coordination.cluster
            seeds = list(dict.fromkeys([*cluster.seeds, *args.join]))
            config = config.model_copy(update={"coordination": config.coordination.model_copy(update={
                "cluster": cluster.model_copy(update={"seeds": seeds})})})
        from caxton_node.server import serve

        serve(config)
    except ConfigError as err:
        raise CommandError(str(err), exit_code=2) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = sub.add_parser("server", help="run a Caxton node").add_subparsers(dest="verb", required=True)
    parser = server.add_parser("start", help="start a node with a config file")
    parser.add_argument("--config", type=Path, required=True, help="node configuration (YAML, runbook keys)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--bootstrap", action="store_true", help="start a new cluster (the seed node)")
    mode.add_argument("--join", action="append", metavar="HOST:7946", help="join through this peer")
    parser.add_argument("--node-id", help="node id (default: node.id, else the hostname)")
    parser.set_defaults(func=start)
