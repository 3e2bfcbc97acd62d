"""The node configuration file (runbook keys) the operator renders into a ConfigMap.

One file serves every pod: `${POD_NAME}` and `${POD_IP}` are expanded by the node
from the downward API at start-up.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources.naming import Names

CONFIG_DIR = "/etc/caxton"
TLS_DIR = "/etc/caxton/tls"
GOSSIP_KEY = "/etc/caxton/gossip/key"
TOKEN_FILE = "/etc/caxton/api/token"
DATA_DIR = "/var/lib/caxton"


def node_config(spec: CaxtonClusterSpec, names: Names) -> dict[str, Any]:
    g, p = spec.gossip, spec.partition
    # Seeds: the first three pods (or all, if fewer); a pod never needs itself as a seed.
    seeds = [names.peer_address(i) for i in range(min(spec.replicas, 3))]
    partition: dict[str, Any] = {"detection_timeout": p.detection_timeout, "queue_writes": p.queue_writes}
    if p.quorum_size is not None:
        partition["quorum_size"] = p.quorum_size
    cluster_security: dict[str, Any] = {"gossip_key_file": GOSSIP_KEY}
    if spec.tls.enabled:
        cluster_security["mtls"] = {
            "enabled": True, "ca_cert": f"{TLS_DIR}/ca.crt",
            "node_cert": f"{TLS_DIR}/${{POD_NAME}}.crt", "node_key": f"{TLS_DIR}/${{POD_NAME}}.key",
        }
    return {
        "node": {"id": "${POD_NAME}", "data_dir": DATA_DIR, "api_addr": "0.0.0.0:8080",
                 "metrics_addr": "0.0.0.0:9090"},
        "coordination": {
            "cluster": {
                "bind_addr": "0.0.0.0:7946", "advertise_addr": "${POD_IP}:7946", "seeds": seeds,
                "bootstrap_expect": spec.replicas, "gossip_interval": g.interval, "gossip_fanout": g.fanout,
                "probe_interval": g.probe_interval, "probe_timeout": g.probe_timeout,
                "suspicion_multiplier": g.suspicion_multiplier,
            },
            "partition": partition,
        },
        "security": {"cluster": cluster_security, "api": {"token_file": TOKEN_FILE}},
    }


def render(spec: CaxtonClusterSpec, names: Names) -> str:
    return yaml.safe_dump(node_config(spec, names), sort_keys=False)


def restart_hash(spec: CaxtonClusterSpec, names: Names) -> str:
    """A hash of the settings a running node needs a restart for. Seeds and bootstrap_expect
    only matter when a node joins, so scaling changes the ConfigMap without restarting anyone."""
    config = node_config(spec, names)
    cluster = config["coordination"]["cluster"]
    cluster.pop("seeds")
    cluster.pop("bootstrap_expect")
    return hashlib.sha256(yaml.safe_dump(config, sort_keys=True).encode()).hexdigest()[:16]
