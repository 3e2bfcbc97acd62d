"""`caxton-operator`: run the Kopf operator (in-cluster, or with $KUBECONFIG)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import kopf

import caxton_operator.handlers.cluster  # noqa: F401  (registers the handlers)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Kopf watches can go silent without an error; bounded timeouts make them reconnect.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.INFO
    settings.persistence.finalizer = "caxton.dev/operator"


def main() -> None:
    parser = argparse.ArgumentParser(prog="caxton-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", help="watch only these namespaces")
    parser.add_argument("--standalone", action="store_true", default=True,
                        help="no peering between operator replicas (default; run one replica)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kopf.run(standalone=args.standalone, clusterwide=not args.namespace, namespaces=args.namespace or [])


if __name__ == "__main__":
    main()
