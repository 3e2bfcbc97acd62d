"""POST /v1/messages/batch on a real node: many messages, one request and one acknowledgement;
each message is judged on its own, in its place, and the order within the batch is kept."""

from __future__ import annotations

from typing import Any

from tests.node.test_agents import deploy
from tests.support.agents import collect
from tests.support.nodes import NodeFactory


def _message(seq: int, **over: Any) -> dict[str, Any]:
    return {"performative": "request", "sender": "tester", "receiver": "echo", "conversation_id": "batch",
            "content": {"seq": seq}, **over}


def test_a_batch_is_routed_in_order_and_each_message_gets_its_own_answer(
        node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory(agents={"max_message_bytes": 4096})
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        # A malformed or oversized message refuses the whole batch, naming it: nothing is routed.
        for bad, status, says in (
                ({"performative": "shout", "sender": "tester", "receiver": "echo"}, 400,
                 "message 1 of the batch: performative 'shout'"),
                (_message(9, content="x" * 5000), 413, "message 1 of the batch: message of 5"),
                ({"performative": "inform", "sender": "tester"}, 400, "message 1 of the batch: receiver is required")):
            resp = client.post("/v1/messages/batch", json=[_message(-1), bad, _message(-2)])
            assert (resp.status_code, resp.json()["code"]) == (status, "invalid_message"), resp.text
            assert resp.json()["message"].startswith(says), resp.text
        # A message that cannot be routed gets its reason in its place; the others go.
        resp = client.post("/v1/messages/batch", json=[_message(0), _message(1), _message(2, receiver="nobody"),
                                                       _message(3, ts_ms=5.0), _message(4)])
        assert resp.status_code == 202, resp.text
        results = resp.json()
        assert [r["status"] for r in results] == [202, 202, 404, 202, 202]
        assert results[2]["code"] == "unknown_receiver" and "nobody" in results[2]["message"]
        accepted = [r for r in results if r["status"] == 202]
        assert len({r["id"] for r in accepted}) == 4 and {r["routed"] for r in accepted} == {"local"}
        # A second batch after the first: the echo answers every accepted message, in order.
        assert client.post("/v1/messages/batch", json=[_message(seq) for seq in range(5, 500)]).status_code == 202
        replies = collect(client, "tester", 4 + 495)
    assert [r["content"]["content"]["seq"] for r in replies] == [0, 1, 3, 4, *range(5, 500)]


MALFORMED = [
    (b"{}", 400, "a batch must be a JSON array"),
    (b"[]", 400, "at least one message"),
    (b"[" + b",".join([b'{"performative":"inform","sender":"a","receiver":"b"}'] * 1001) + b"]", 400,
     "a batch of 1001 messages exceeds the limit of 1000"),
    (b'[{"performative":"inform","sender":"a","receiver":"b","content":NaN}]', 400, "batch refused"),
    (b"[" * 10_000, 400, "batch refused"),
]


def test_a_malformed_batch_is_refused_whole_with_the_reason(node_factory: NodeFactory) -> None:
    node = node_factory()
    with node.client() as client:
        for body, status, says in MALFORMED:
            resp = client.post("/v1/messages/batch", content=body, headers={"Content-Type": "application/json"})
            assert (resp.status_code, says in resp.json()["message"]) == (status, True), (body[:40], resp.text)
        assert client.get("/v1/queue").json()["depth"] == 0


def test_a_batch_needs_the_token_and_is_capped_before_it_is_read(node_factory: NodeFactory) -> None:
    node = node_factory()
    with node.client(token=False) as anonymous:
        assert anonymous.post("/v1/messages/batch", json=[_message(0)]).status_code == 401
    with node.client() as client:
        huge = client.post("/v1/messages/batch", content=b"[" + b" " * (9 * 2**20) + b"]",
                           headers={"Content-Type": "application/json"})
        assert huge.status_code == 413 and "8388608 bytes" in huge.json()["message"]
