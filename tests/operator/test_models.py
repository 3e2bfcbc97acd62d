"""The models are the source of the CRDs: crds/ must match them, and they accept the design's sample."""

from __future__ import annotations

import subprocess
import sys

import pytest
from caxton_operator.models import CaxtonAgentSpec, CaxtonClusterSpec, CaxtonUpgradeSpec
from pydantic import ValidationError


def test_committed_crds_match_the_models() -> None:
    result = subprocess.run([sys.executable, "-m", "caxton_operator.crdgen", "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_design_sample_specs_parse_with_defaults() -> None:
    cluster = CaxtonClusterSpec.model_validate({
        "replicas": 3, "version": "1.2.0", "image": "ghcr.io/caxton/caxton-node",
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
        "storage": {"size": "1Gi", "storageClassName": "standard"},
        "gossip": {"interval": "200ms", "fanout": 3, "probeInterval": "1s", "probeTimeout": "500ms",
                   "suspicionMultiplier": 4},
        "partition": {"detectionTimeout": "5s", "queueWrites": True},
        "tls": {"enabled": True, "caSecretName": "", "certDuration": "2160h", "renewBefore": "720h"},
        "rebalance": {"strategy": "least-loaded", "threshold": "20%"},
    })
    assert cluster.storage.storage_class_name == "standard"
    upgrade = CaxtonUpgradeSpec.model_validate({
        "clusterRef": {"name": "demo"}, "version": "1.3.0",
        "canary": {"duration": "10m", "maxErrorRate": "1%", "maxP99Latency": "10ms"},
        "batchSize": 1, "autoRollback": True, "paused": False,
    })
    assert upgrade.canary.max_p99_latency == "10ms"
    agent = CaxtonAgentSpec.model_validate({
        "clusterRef": {"name": "demo"},
        "module": {"configMapRef": {"name": "auctioneer-wasm", "key": "agent.wasm"}, "sha256": "a" * 64},
        "replicas": 2, "limits": {"memory": "16Mi", "fuel": 10_000_000, "deadline": "10ms"}, "priority": "normal",
    })
    assert agent.module.config_map_ref is not None and agent.module.config_map_ref.key == "agent.wasm"


def test_models_refuse_what_the_crds_refuse() -> None:
    with pytest.raises(ValidationError):
        CaxtonClusterSpec.model_validate({"version": "1.2", "replicas": 0})
    with pytest.raises(ValidationError):
        CaxtonClusterSpec.model_validate({"version": "1.2.0", "replica": 3})
