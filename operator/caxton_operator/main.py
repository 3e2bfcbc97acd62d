"""`caxton-operator`: run the Kopf operator (in-cluster, or with $KUBECONFIG).

Standalone: one replica, no Kopf peering (the Helm chart runs one, with the
Recreate strategy). Two operators watching the same namespaces would both act.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

import caxton_operator.handlers.agent
import caxton_operator.handlers.backup
import caxton_operator.handlers.cluster
import caxton_operator.handlers.rebalance
import caxton_operator.handlers.removal
import caxton_operator.handlers.upgrade


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Kopf watches can go silent without an error; bounded timeouts make them reconnect.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    # Events for what users act on; Kopf's own per-handler chatter stays in the log.
    settings.posting.level = logging.WARNING
    settings.persistence.finalizer = "caxton.dev/operator"
    # A handler that keeps failing is retried with back-off, not forever at full speed.
    settings.execution.max_workers = 8
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60]
    # Kopf waits this long for more events of an object before handling them (default 0.1 s);
    # a create takes two rounds (finalizer, then handler), and users wait for both.
    settings.batching.batch_window = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(prog="caxton-operator", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--namespace", action="append", help="watch only these namespaces (repeatable)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--health-port", type=int, default=0, help="serve /healthz for liveness (0: off)")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics (0: off)")
    parser.add_argument("--module-ca-file", type=Path, help="PEM CAs trusted for agent module URLs, "
                        "besides the public ones")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.module_ca_file:
        caxton_operator.handlers.agent.trust_module_ca(args.module_ca_file)
    if args.metrics_port:
        start_http_server(args.metrics_port, "0.0.0.0")
    kopf.run(
        standalone=True, clusterwide=not args.namespace, namespaces=args.namespace or [],
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
    )


if __name__ == "__main__":
    main()
