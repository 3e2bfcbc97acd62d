"""The operator's own Prometheus metrics (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

reconcile_seconds = Histogram(
    "caxton_operator_reconcile_duration_seconds", "Time to reconcile one resource",
    ["kind"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
reconcile_errors = Counter("caxton_operator_reconcile_errors_total", "Reconciliations that raised", ["kind"])
cluster_members = Gauge("caxton_operator_cluster_members_alive", "Alive members as the operator last saw them",
                        ["namespace", "cluster"])
agent_replicas_ready = Gauge("caxton_operator_agent_replicas_ready", "Ready replicas of a CaxtonAgent",
                             ["namespace", "agent"])
upgrade_phase = Gauge("caxton_operator_upgrade_phase", "1 for the phase a CaxtonUpgrade is in, 0 for the others",
                      ["namespace", "upgrade", "cluster", "phase"])
leader = Gauge("caxton_operator_leader", "1 while this replica leads (runs the handlers), 0 while it stands by")
