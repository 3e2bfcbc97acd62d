"""Leader election over a `coordination.k8s.io` Lease, so that of the chart's replicas exactly one
runs the handlers and the others stand by: the rules (election, pure) and the Lease they are
played out on (lease)."""
