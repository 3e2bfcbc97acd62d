"""Which skips a test run may contain. Everything else is a failure.

A skipped test proves nothing, and a skip that appears silently (iptables gone, a
tool not installed) would let a guarantee vanish from CI. Only skips that follow
from running against a foreign cluster (KUBECONFIG set: no process kubelet, no
loopback pods to cut with iptables) are allowed, and only when KUBECONFIG is set.
`CAXTON_ALLOW_SKIPS=1` lets a developer run on a machine that lacks something.
"""

from __future__ import annotations

from collections.abc import Mapping

# Reasons (their beginnings) that only apply on a cluster other than our local control plane.
FOREIGN_CLUSTER_SKIPS = (
    "needs the process kubelet of the local control plane",
    "the caxton images must be loadable by this cluster's nodes",
    "iptables on this machine reaches only pods of the process kubelet",
    "installs the operator image, which only the process kubelet runs",
    "starts a second local control plane",
    "upgrade tests use the process kubelet's image table",
    "the module server listens on this machine's loopback",
    "the S3 server runs on this machine's loopback",
)


def refusal(reason: str, env: Mapping[str, str]) -> str:
    """Empty if a skip with `reason` is allowed here, else why the run must fail."""
    if env.get("CAXTON_ALLOW_SKIPS") == "1":
        return ""
    if env.get("KUBECONFIG") and reason.startswith(FOREIGN_CLUSTER_SKIPS):
        return ""
    return (f"skip not allowed: {reason!r}. Only foreign-cluster skips (with KUBECONFIG) are allowed "
            "(tests/skips.py); install what is missing (hack/setup.sh) or set CAXTON_ALLOW_SKIPS=1 to "
            "accept skipping.")
