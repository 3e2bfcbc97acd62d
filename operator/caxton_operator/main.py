"""`caxton-operator`: run the Kopf operator (in-cluster, or with $KUBECONFIG).

With --leader-elect, several replicas may run: a Lease picks the one that acts and the
others stand by (caxton_operator.leadership); the chart runs two. Kopf's own peering is
not used: between equal priorities it lets every replica act, with a warning.
Without it, exactly one replica must run: two would both act.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import kopf
from caxton_kube import Kube
from prometheus_client import start_http_server

import caxton_operator.handlers.agent
import caxton_operator.handlers.backup
import caxton_operator.handlers.cluster
import caxton_operator.handlers.rebalance
import caxton_operator.handlers.removal
import caxton_operator.handlers.upgrade
from caxton_operator import kubeapi, metrics
from caxton_operator.leadership.election import Timing
from caxton_operator.leadership.leader import run_while_leading
from caxton_operator.leadership.lease import LeaseLock


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
    election = parser.add_argument_group("leader election (several replicas, one acting)")
    election.add_argument("--leader-elect", action="store_true", help="stand by until this replica holds the Lease")
    election.add_argument("--lease-name", default="caxton-operator")
    election.add_argument("--lease-namespace", help="default: the pod's namespace ($POD_NAMESPACE or its "
                          "service account's)")
    election.add_argument("--lease-duration", type=float, default=15.0, help="seconds a standby waits for an "
                          "unrenewed Lease before taking over (default 15)")
    election.add_argument("--renew-deadline", type=float, default=10.0, help="seconds the leader keeps acting "
                          "without a successful renewal (default 10)")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds between tries (default 2)")
    args = parser.parse_args()
    try:
        timing = Timing(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.module_ca_file:
        caxton_operator.handlers.agent.trust_module_ca(args.module_ca_file)
    if args.metrics_port:
        start_http_server(args.metrics_port, "0.0.0.0")

    def run() -> None:
        kopf.run(
            standalone=True, clusterwide=not args.namespace, namespaces=args.namespace or [],
            liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
        )

    if not args.leader_elect:
        metrics.leader.set(1)
        run()
        return
    # The pod's name says which replica holds the Lease; the suffix makes a restarted container
    # a new candidate, which waits for the Lease like any other.
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    namespace = args.lease_namespace or os.environ.get("POD_NAMESPACE") or kubeapi.client().namespace
    # A client of its own: renewals never queue behind the handlers' calls in a shared pool.
    lease_client = Kube(os.environ.get("KUBECONFIG") or None)
    lock = LeaseLock(lease_client, namespace, args.lease_name, identity, timing)
    run_while_leading(lock, run, health_port=args.health_port)


if __name__ == "__main__":
    main()
