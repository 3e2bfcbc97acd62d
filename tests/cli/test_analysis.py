"""The incident verbs' decisions from what nodes report (pure; the e2e runs the verbs)."""

from __future__ import annotations

from typing import Any

import pytest
from caxton_cli import analysis
from caxton_cli.debug_dump import REDACTED, redact, scrub


def letter(conversation: str, agent: str, ts: int, reason: str = "deadline exceeded after 12ms",
           performative: str = "request", content: Any = None) -> dict[str, Any]:
    return {"id": f"{conversation}-{agent}-{ts}", "agent": agent, "ts_ms": ts, "reason": reason,
            "message": {"conversation_id": conversation, "performative": performative, "receiver": agent,
                        "content": content}}


def test_a_cascade_spans_agents_and_names_the_first_failure() -> None:
    letters = [letter("c1", "billing", 2000), letter("c1", "orders", 1000, reason="fuel exhausted"),
               letter("c1", "gateway", 3000), letter("c2", "echo", 1500), letter("c2", "echo", 1600),
               letter("old", "a", 10), letter("old", "b", 20)]
    cascades = analysis.error_cascades(letters, since_ms=500)
    assert [c["conversation_id"] for c in cascades] == ["c1"]  # c2 stayed in one agent, "old" is outside
    assert cascades[0]["agents"] == ["orders", "billing", "gateway"]
    assert cascades[0]["first"] == {"agent": "orders", "reason": "fuel exhausted", "ts_ms": 1000, "node": ""}
    assert analysis.error_cascades(letters, since_ms=0)[-1]["conversation_id"] == "old"


def test_message_patterns_count_by_agent_performative_and_error() -> None:
    letters = [letter("c1", "a", 100), letter("c2", "a", 200, reason="deadline exceeded after 30ms"),
               letter("c3", "b", 300, reason="trap: unreachable", performative="inform"),
               letter("c4", "c", 400, reason="queue full", content={"error": "upstream timeout"}),
               letter("c5", "d", 10, reason="timeout")]
    counts = analysis.message_patterns(letters, "timeout|deadline", since_ms=50)
    assert counts["matched"] == 3
    assert counts["byAgent"] == {"a": 2, "c": 1}
    assert counts["byPerformative"] == {"request": 3}
    assert counts["byError"] == {"deadline exceeded": 2, "queue full": 1}
    with pytest.raises(Exception):  # noqa: B017 - re.error
        analysis.message_patterns(letters, "(", since_ms=0)


def test_config_drift_is_by_dotted_key() -> None:
    baseline = {"agents": {"queue_capacity": 1024, "delivery": "at-most-once"}, "node": {"id": ""}}
    running = {"agents": {"queue_capacity": 7, "delivery": "at-most-once"}, "node": {"id": "demo-0"}, "x": 1}
    assert analysis.config_drift(baseline, running) == [
        ("agents.queue_capacity", 1024, 7), ("node.id", "", "demo-0"), ("x", None, 1)]
    assert analysis.config_drift(baseline, baseline) == []


@pytest.mark.parametrize(("views", "majority", "minority", "unanswered"), [
    ({"n0": {"side": "majority"}, "n1": {"side": "majority"}, "n2": {"side": "minority"}}, ["n0", "n1"], ["n2"], []),
    ({"n0": {"side": "majority"}, "n1": None, "n2": {"side": "majority"}}, ["n0", "n2"], [], ["n1"]),
    ({"n0": {"side": "minority"}, "n1": {"side": "minority"}}, [], ["n0", "n1"], []),
])
def test_partition_sides(views: dict[str, Any], majority: list[str], minority: list[str],
                         unanswered: list[str]) -> None:
    assert analysis.partition_sides(views) == analysis.Sides(majority, minority, unanswered)


def test_state_differences_and_the_losing_side() -> None:
    sides = analysis.Sides(["n0", "n1"], ["n2"], [])
    states = {"n0": {"agents": ["a", "b"], "queuedWrites": 0, "deadLetters": 1},
              "n1": {"agents": ["c"], "queuedWrites": 0, "deadLetters": 0},
              "n2": {"agents": ["c", "d"], "queuedWrites": 142, "deadLetters": 0}}
    diff = analysis.state_differences(states, sides)
    assert diff["majority"]["only"] == ["a", "b"] and diff["minority"]["only"] == ["d"]
    assert diff["minority"]["queuedWrites"] == 142 and diff["majority"]["deadLetters"] == 1
    assert analysis.losing_side(sides, "majority") == ["n2"]
    assert analysis.losing_side(sides, "minority") == ["n0", "n1"]
    with pytest.raises(ValueError, match="majority or minority"):
        analysis.losing_side(sides, "both")


def test_redaction_keeps_paths_and_replaces_secret_values() -> None:
    config = {"security": {"api": {"token_file": "/etc/caxton/token"}, "cluster": {"gossip_key_file": "/k"}},
              "gossipKeyring": {"primary": "abc"}, "token": "s3cr3t-t0ken", "name": "demo",
              "data": {"client-key-data": "LS0t"}}
    out = redact(config)
    assert out["security"]["api"]["token_file"] == "/etc/caxton/token"
    assert out["security"]["cluster"]["gossip_key_file"] == "/k"
    assert out["token"] == REDACTED and out["gossipKeyring"] == REDACTED and out["name"] == "demo"
    assert out["data"]["client-key-data"] == REDACTED
    pem = b"x\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\ny the-token-value z"
    assert scrub(pem, [b"the-token-value"]) == b"x\n[REDACTED]\ny [REDACTED] z"
