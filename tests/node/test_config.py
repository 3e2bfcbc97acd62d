"""The node config file: runbook keys accepted, anything else refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from caxton_node.config import ConfigError, load_config, load_config_file


def test_runbook_keys_are_accepted_with_their_units() -> None:
    config = load_config({
        "coordination": {
            "cluster": {"bind_addr": "0.0.0.0:7946", "bootstrap_expect": 3, "gossip_interval": "200ms",
                        "probe_timeout": "500ms", "seeds": ["caxton-0.caxton:7946"]},
            "partition": {"detection_timeout": "5s", "quorum_size": 2, "queue_writes": True},
        },
        "security": {"cluster": {"mtls": {"enabled": True, "ca_cert": "/etc/caxton/certs/ca.crt"}}},
    })
    assert config.coordination.cluster.gossip_interval == pytest.approx(0.2)
    assert config.coordination.partition.detection_timeout == 5.0
    assert str(config.security.cluster.mtls.ca_cert) == "/etc/caxton/certs/ca.crt"


def test_defaults_match_the_runbook() -> None:
    cluster = load_config({}).coordination.cluster
    assert (cluster.gossip_interval, cluster.gossip_fanout, cluster.probe_interval, cluster.probe_timeout,
            cluster.suspicion_multiplier) == (0.2, 3, 1.0, 0.5, 4)


@pytest.mark.parametrize(("data", "message"), [
    ({"coordination": {"cluster": {"gossip_intervall": "1s"}}}, "coordination.cluster.gossip_intervall: unknown key"),
    ({"coordination": {"cluster": {"probe_timeout": "soon"}}}, "coordination.cluster.probe_timeout: .*not a duration"),
    ({"coordination": {"cluster": {"bootstrap_expect": 0}}}, "coordination.cluster.bootstrap_expect"),
    ({"security": {"cluster": {"mtls": {"enabled": "perhaps"}}}}, "security.cluster.mtls.enabled"),
    ({"agents": {"memory": "lots"}}, "agents.memory: .*not a size"),
    # The same bounds as the deploy API and the CaxtonAgent CRD (caxton_node.limits).
    ({"agents": {"memory": "1Ki"}}, "agents.memory: .*between 64Ki and 4Gi"),
    ({"agents": {"deadline": "0.5ms"}}, "agents.deadline: .*between 1ms and 60s"),
    ({"agents": {"deadline": "2m"}}, "agents.deadline: .*between 1ms and 60s"),
    ({"agents": {"fuel": 2**70}}, "agents.fuel: .*between 1 and 1000000000000"),
    ({"node": {"api_addr": "127.0.0.1:99999"}}, "node.api_addr: .*port from 1 to 65535"),
    ({"node": {"metrics_addr": "127.0.0.1:http"}}, "node.metrics_addr: .*port from 1 to 65535"),
    ({"coordination": {"cluster": {"seeds": ["caxton-0:0"]}}}, r"coordination.cluster.seeds.0: .*port"),
])
def test_invalid_keys_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(data)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("coordination: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")


def test_environment_references_are_expanded() -> None:
    config = load_config({"node": {"id": "${POD_NAME}"},
                          "coordination": {"cluster": {"advertise_addr": "${POD_IP}:7946"}}},
                         env={"POD_NAME": "demo-1", "POD_IP": "127.0.0.7"})
    assert config.node.id == "demo-1"
    assert config.coordination.cluster.advertise_addr == "127.0.0.7:7946"
    with pytest.raises(ConfigError, match=r"refers to \$\{MISSING\}"):
        load_config({"node": {"id": "${MISSING}"}}, env={})
