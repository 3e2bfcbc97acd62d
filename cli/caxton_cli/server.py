"""`caxton server start`: run a node (the container command of every Caxton pod)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from caxton_node.config import ConfigError, StartupError, load_config_file

from caxton_cli.errors import CommandError


def start(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config_file(Path(args.config))
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
    except (ConfigError, StartupError) as err:
        raise CommandError(str(err), exit_code=2) from None
