"""What a node trusts and presents, by fingerprint and id only: its mTLS CA bundle and
leaf, its gossip keys and its accepted API tokens.

The operator confirms each phase of a rotation from this report (`GET /v1/security`)
rather than from what it wrote into a Secret, and `kubectl caxton security cert-status`
reads certificate expiry from it. The same facts are published as metrics. Key
material and tokens never leave the node: keys and tokens appear as hash prefixes.
"""

from __future__ import annotations

import calendar
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caxton_node.api.tokens import TokenSet
    from caxton_node.metrics import NodeMetrics
    from caxton_node.node import Node


def report(node: Node, tokens: TokenSet | None) -> dict[str, Any]:
    certificates = node.forwarder.certificates if node.forwarder is not None else None
    metrics = node.metrics.tls_handshake_failures
    tls: dict[str, Any] | None = None
    if certificates is not None:
        tls = {**certificates.report(), "handshakeFailures": {
            side: int(metrics.labels(side)._value.get()) for side in ("server", "client")}}
    keyring = node.membership.keyring.describe() if node.membership is not None else None
    gossip = {"primary": keyring["primary"], "keyIds": keyring["ids"]} if keyring else None
    return {"node": node.id, "tls": tls, "gossip": gossip,
            "api": {"tokens": tokens.report() if tokens is not None else []}}


def publish(metrics: NodeMetrics, facts: dict[str, Any]) -> None:
    """The report as info gauges, replaced whole on each scrape (a dropped key leaves no series)."""
    metrics.tls_certificate.clear()
    tls = facts["tls"]
    if tls is not None:
        leaf = tls["leaf"]
        metrics.tls_certificate.labels("leaf", leaf["fingerprint"], leaf["subject"]).set(1)
        for ca in tls["trusted"]:
            metrics.tls_certificate.labels("ca", ca["fingerprint"], ca["subject"]).set(1)
        metrics.tls_leaf_expiry.set(calendar.timegm(time.strptime(leaf["notAfter"], "%Y-%m-%dT%H:%M:%SZ")))
    metrics.gossip_keys.clear()
    if facts["gossip"] is not None:
        for key in facts["gossip"]["keyIds"]:
            metrics.gossip_keys.labels(key, str(key == facts["gossip"]["primary"]).lower()).set(1)
    metrics.api_tokens.clear()
    for token in facts["api"]["tokens"]:
        metrics.api_tokens.labels(token["id"], str(token["primary"]).lower()).set(1)
