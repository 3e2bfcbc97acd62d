"""The API's edge on a real node process: hostile or careless requests get a clear 4xx, never a 500,
never memory, never a lost message, and never the thread pool the other calls need."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.node.test_agents import collect, deploy, send
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for

MiB = 2**20


def peak_rss(node: NodeProcess) -> int:
    """The node process's high-water RSS in bytes (VmHWM)."""
    assert node.proc is not None
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def raw_post(node: NodeProcess, path: str, *, declared: int, send_bytes: int,
             headers: dict[str, str] | None = None) -> tuple[int, bytes, int]:
    """POSTs with Content-Length `declared`, streaming `send_bytes` of body from another thread
    while the response is read; returns (status, response body, bytes the server let us send)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {node.address}", "Content-Type: application/json",
             f"Content-Length: {declared}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    sock = socket.create_connection((node.address, 8080), timeout=60)
    sent = 0

    def pump() -> None:
        nonlocal sent
        chunk = b"x" * MiB
        try:
            while sent < send_bytes:
                sock.sendall(chunk[: send_bytes - sent])
                sent += min(len(chunk), send_bytes - sent)
        except OSError:
            pass  # the server may close once it has answered

    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sender = threading.Thread(target=pump)
        sender.start()
        response = b""
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
        head, _, body = response.partition(b"\r\n\r\n")
        length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                       if h.lower().startswith(b"content-length")), 0)
        while len(body) < length:
            body += sock.recv(65536)
        sender.join(timeout=120)
        return int(head.split()[1]), body, sent
    finally:
        sock.close()


# -- defect 6: the token check and the body cap come before the body --------------------------------

def test_an_anonymous_200_mib_body_is_refused_without_being_read(node_factory: NodeFactory) -> None:
    node = node_factory()
    before = peak_rss(node)
    for path in ("/v1/agents", "/v1/messages", "/v1/queue/drain"):
        status, body, _ = raw_post(node, path, declared=200 * MiB, send_bytes=200 * MiB)
        assert status == 401, body
        assert json.loads(body)["code"] == "unauthorized"
    growth = peak_rss(node) - before
    # The old edge parsed each body before the token check: +420 MiB for one such POST.
    assert growth < 32 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB"


def test_an_oversized_body_is_refused_by_its_declared_length_before_it_is_sent(node_factory: NodeFactory) -> None:
    node = node_factory()
    token = {"Authorization": f"Bearer {node.token_file.read_text().strip()}"}
    before = peak_rss(node)
    status, body, _ = raw_post(node, "/v1/agents", declared=200 * MiB, send_bytes=0, headers=token)
    assert status == 413 and json.loads(body)["code"] == "body_too_large"
    status, body, _ = raw_post(node, "/v1/messages", declared=65 * 2**10 + 1, send_bytes=0, headers=token)
    assert status == 413 and "65536" in json.loads(body)["message"]
    status, body, _ = raw_post(node, "/v1/queue/drain", declared=70_000, send_bytes=0, headers=token)
    assert status == 413 and "65536 bytes for POST /v1/queue/drain" in json.loads(body)["message"]
    with node.client() as client:
        # Chunked, no declared length: counted as it arrives.
        chunked = client.post("/v1/messages", content=iter([b"x" * 40_000] * 3))
        assert chunked.status_code == 413 and chunked.json()["code"] == "body_too_large"
    assert peak_rss(node) - before < 32 * MiB


def test_malformed_json_without_a_token_is_401_not_400(node_factory: NodeFactory) -> None:
    node = node_factory()
    with node.client(token=False) as anonymous:
        for path in ("/v1/agents", "/v1/messages", "/v1/emergency/stop", "/v1/suspend-by-priority"):
            resp = anonymous.post(path, content=b"{not json", headers={"content-type": "application/json"})
            assert resp.status_code == 401, (path, resp.text)
        non_ascii = {b"Authorization": "Bearer \u00e9t\u00e9".encode("latin-1")}
        # A non-ASCII token is a wrong token, not a 500.
        assert anonymous.post("/v1/agents", json={"id": "x"}, headers=non_ascii).status_code == 401
    with node.client() as client:
        resp = client.post("/v1/agents", content=b"{not json", headers={"content-type": "application/json"})
        assert resp.status_code == 400 and resp.json()["code"] == "invalid_json"


# -- defect 7: text is checked once at the edge; reads never fail ---------------------------------

SURROGATE = b'{"performative":"inform","sender":"tester","receiver":"tester","content":"\\ud800"}'


def test_lone_surrogates_are_refused_and_reads_never_fail(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        send(client, "echo", "fine", conversation="c1")
        for raw in (SURROGATE, SURROGATE.replace(b'"tester","content"', b'"echo","content"'),
                    b'{"performative":"inform","sender":"a\\udfff","receiver":"echo"}',
                    b'{"performative":"inform","sender":"t","receiver":"echo","content":{"\\udbff":1}}',
                    b'{"performative":"inform","sender":"t","receiver":"echo","content":NaN}'):
            refused = client.post("/v1/messages", content=raw)
            assert refused.status_code == 400, refused.text
            assert refused.json()["code"] == "invalid_message"
        assert "surrogate" in client.post("/v1/messages", content=SURROGATE).json()["message"]
        # A surrogate pair is a character like any other.
        send(client, "echo", "\U0001f600", conversation="c1")
        replies = collect(client, "tester", 2)
        assert [r["content"]["content"] for r in replies] == ["fine", "\U0001f600"]
        assert client.get("/v1/dead-letters").status_code == 200
        assert client.get("/v1/conversations/c1").status_code == 200
        assert client.get("/v1/mailboxes/tester").status_code == 200


def test_rows_stored_before_the_edge_checked_them_are_still_readable(node_factory: NodeFactory) -> None:
    node = node_factory()
    node.stop()
    poisoned = ('{"id":"old-1","performative":"inform","sender":"t","receiver":"gone","conversation_id":"old",'
                '"reply_with":"","in_reply_to":"","content":["\\ud800",NaN],"ts_ms":1}')
    with sqlite3.connect(node.root / "data" / "caxton.db") as db:
        db.execute("INSERT INTO dead_letters (msg_id, reason, body, ts_ms) VALUES ('old-1', 'unknown_receiver', ?, 1)",
                   (poisoned,))
        db.execute("INSERT INTO conversations (conversation_id, body) VALUES ('old', ?)", (poisoned,))
    node.start()
    with node.client() as client:
        letters = client.get("/v1/dead-letters")
        assert letters.status_code == 200
        assert b"\\ud800" in letters.content
        assert letters.json()[0]["message"]["content"] == ["\ud800", None]
        trace = client.get("/v1/conversations/old")
        assert trace.status_code == 200 and b"\\ud800" in trace.content


def test_a_mailbox_read_removes_nothing_it_cannot_encode() -> None:
    from caxton_node.messages import Message
    from caxton_node.routing.mailboxes import Mailboxes

    boxes = Mailboxes(on_expired=lambda _msg: None)
    boxes.open("client")
    good = Message("inform", "a", "client", "c", content=1)
    bad = Message("inform", "a", "client", "c", content=object())  # no JSON for this
    for msg in (good, bad):
        assert boxes.deliver(msg)
    with pytest.raises(TypeError):
        boxes.take_encoded("client", 10)
    assert boxes.sizes() == {"client": 2}
    assert boxes.take("client", 10) == [good, bad]  # still there, in order


def test_long_polls_are_bounded() -> None:
    from caxton_node.routing.mailboxes import MAX_LONG_POLLS, Mailboxes, TooManyLongPolls

    boxes = Mailboxes(on_expired=lambda _msg: None)
    stops = [boxes.watch(f"client-{i}", lambda: None) for i in range(MAX_LONG_POLLS)]
    with pytest.raises(TooManyLongPolls):
        boxes.watch("one-more", lambda: None)
    stops[0]()
    boxes.watch("one-more", lambda: None)
    assert boxes.long_polls == MAX_LONG_POLLS == 1024


# -- defect 8c: idle mailboxes expire ---------------------------------------------------------------

def test_idle_mailboxes_expire_and_their_messages_become_dead_letters(node_factory: NodeFactory) -> None:
    node = node_factory(agents={"mailbox_idle_expiry": "1s"})
    names = [f"client-{i}" for i in range(300)]
    with node.client() as client:
        # The message goes in before the other mailboxes are opened: on a loaded machine the first
        # ones may already have expired by the time the last is opened (1 s is the point here).
        for name in names[:2]:
            assert client.get(f"/v1/mailboxes/{name}").status_code == 200
        client.post("/v1/messages", json={"performative": "inform", "sender": "client-0", "receiver": "client-1",
                                          "content": "never read"}).raise_for_status()
        for name in names[2:]:
            assert client.get(f"/v1/mailboxes/{name}").status_code == 200

        def only_the_live_one_left() -> bool:
            client.get("/v1/mailboxes/keeper")  # a client that keeps reading
            return set(client.get("/v1/queue").json()["mailboxes"]) == {"keeper"}

        wait_for(only_the_live_one_left, timeout=60, what="idle mailboxes to expire")
        expired = [d for d in client.get("/v1/dead-letters").json() if d["reason"] == "mailbox_expired"]
        assert [d["message"]["content"] for d in expired] == ["never read"]
        gone = client.post("/v1/messages", json={"performative": "inform", "sender": "keeper",
                                                 "receiver": "client-1"})
        assert gone.status_code == 404 and gone.json()["code"] == "unknown_receiver"


def test_a_long_poll_keeps_its_mailbox_alive(node_factory: NodeFactory) -> None:
    node = node_factory(agents={"mailbox_idle_expiry": "1s"})
    with node.client() as client, ThreadPoolExecutor(1) as pool:
        client.get("/v1/mailboxes/idle")
        poll = pool.submit(client.get, "/v1/mailboxes/patient", params={"wait": 20})
        wait_for(lambda: client.get("/v1/queue").json()["longPolls"] == 1, timeout=30, what="the long poll")

        def idle_one_expired() -> bool:
            client.get("/v1/mailboxes/other")  # other clients' traffic sweeps idle mailboxes
            return "idle" not in client.get("/v1/queue").json()["mailboxes"]

        wait_for(idle_one_expired, timeout=60, what="the idle mailbox to expire")
        assert "patient" in client.get("/v1/queue").json()["mailboxes"]
        client.post("/v1/messages", json={"performative": "inform", "sender": "other", "receiver": "patient",
                                          "content": 7}).raise_for_status()
        assert [m["content"] for m in poll.result(timeout=30).json()] == [7]


# -- defect 10: long polls do not starve the API or the probes --------------------------------------

def test_45_long_polls_leave_the_api_and_the_probes_answering(node_factory: NodeFactory) -> None:
    node = node_factory()
    polls: list[Future[httpx.Response]] = []
    clients = [node.client() for _ in range(45)]
    with ThreadPoolExecutor(45) as pool, node.client() as client:
        try:
            for c in clients:
                polls.append(pool.submit(c.get, "/v1/mailboxes/x", params={"wait": 20, "limit": 1}))
            wait_for(lambda: client.get("/v1/queue").json()["longPolls"] == 45, timeout=60,
                     what="45 long polls waiting in the node")
            assert client.get("/v1/agents").status_code == 200
            assert httpx.get(f"{node.api}/readyz", timeout=30).status_code == 200
            assert httpx.get(f"{node.api}/healthz", timeout=30).status_code == 200
            # They answered while every long poll was still waiting.
            assert not any(p.done() for p in polls)
            for i in range(45):
                client.post("/v1/messages", json={"performative": "inform", "sender": "feeder",
                                                  "receiver": "x", "content": i}).raise_for_status()
            got = sorted(m["content"] for p in polls for m in p.result(timeout=60).json())
            assert got == list(range(45))  # each message to exactly one poll
        finally:
            for c in clients:
                c.close()


# -- defect 11: no 500s ------------------------------------------------------------------------------

def test_deep_nesting_and_huge_integers_are_400(node_factory: NodeFactory) -> None:
    node = node_factory()
    deep = b"[" * 990 + b"]" * 990
    huge = b"1" * 5000
    message = b'{"performative":"inform","sender":"t","receiver":"t","content":%s}'
    with node.client() as client:
        for path, body in (("/v1/messages", deep), ("/v1/messages", message % deep), ("/v1/messages", message % huge),
                           ("/v1/agents", b'{"id":"a","wasm":"","limits":{"fuel":%s}}' % huge),
                           ("/v1/agents", b'{"id":%s}' % deep), ("/v1/queue/drain", b'{"timeout":%s}' % deep),
                           ("/v1/emergency/stop", b'{"dump_to":%s}' % huge)):
            resp = client.post(path, content=body, headers={"content-type": "application/json"})
            assert resp.status_code == 400, (path, body[:40], resp.text)
            assert resp.json()["code"] in ("invalid_message", "invalid_json", "invalid_request")
        assert client.get("/v1/agents").status_code == 200


def test_an_unwritable_dump_fails_before_any_agent_is_suspended(node_factory: NodeFactory,
                                                                agents: dict[str, bytes]) -> None:
    node = node_factory()
    root = node.root / "data" / "dumps"
    root.mkdir(parents=True)
    (root / "occupied").write_text("a file where the dump directory would go")
    (root / "escape").symlink_to(node.root)
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        unwritable = client.post("/v1/emergency/stop", json={"dump_to": str(root / "occupied" / "now")})
        assert unwritable.status_code == 409, unwritable.text
        assert "no agent was suspended" in unwritable.json()["message"]
        for outside in (str(root / ".." / "elsewhere"), "../elsewhere", str(node.root), "/tmp/caxton-dump",
                        "escape/now"):
            refused = client.post("/v1/emergency/stop", json={"dump_to": outside})
            assert refused.status_code == 403, (outside, refused.text)
            assert "dump root" in refused.json()["message"]
        assert client.get("/v1/agents/echo").json()["state"] == "running"
        assert not (node.root / "data" / "elsewhere").exists() and not (node.root / "now").exists()
        stopped = client.post("/v1/emergency/stop", json={"dump_to": "incident-1"})
        assert stopped.status_code == 200 and stopped.json()["suspended"] == ["echo"]
        assert (root / "incident-1" / "caxton.db").stat().st_size > 0


# -- defect 12: validation ---------------------------------------------------------------------------

def module(wasm: bytes) -> str:
    return base64.b64encode(wasm).decode()


REFUSED_DEPLOYS: list[tuple[dict[str, Any], int, str]] = [
    ({"id": "echo\n"}, 400, "id: String should match pattern"),
    ({"id": "Echo"}, 400, "id: String should match pattern"),
    ({"limits": {"fuel": 2**70}}, 400, "limits.fuel: Input should be less than or equal to 1000000000000"),
    ({"limits": {"fuel": 0}}, 400, "limits.fuel"),
    ({"limits": {"deadline": 1e-9}}, 400, "limits.deadline: Input should be greater than or equal to 0.001"),
    ({"limits": {"deadline": "0.5ms"}}, 422, "deadline must be between 1ms and 60s"),
    ({"limits": {"deadline": "61s"}}, 422, "deadline must be between 1ms and 60s"),
    ({"limits": {"memory": "1Ki"}}, 422, "memory must be between 64Ki and 4Gi"),
    ({"wasm": module(b"(module (func))")}, 422, "looks like WAT text; compile it with wat2wasm"),
    ({"wasm": module(b"\x01\x02\x03\xff\xfe garbage")}, 422, "does not start with the magic bytes 00 61 73 6d"),
    ({"wasm": module(b"\x7fELF\x02\x01\x01")}, 422, "an ELF executable, not a Wasm module"),
    ({"wasm": module(b"")}, 422, "not a binary Wasm module: empty"),
]


def twice_encoded(wasm: bytes) -> dict[str, Any]:
    return {"wasm": module(module(wasm).encode())}


def test_deploys_outside_the_bounds_are_refused_with_the_reason(node_factory: NodeFactory,
                                                               agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        for body, status, says in [*REFUSED_DEPLOYS, (twice_encoded(agents["echo"]), 422, "it was encoded twice")]:
            resp = client.post("/v1/agents", json={"id": "echo", "wasm": module(agents["echo"]), **body})
            assert resp.status_code == status, (body, resp.text)
            assert says in resp.json()["message"], (body, resp.text)
        assert client.get("/v1/agents").json() == []
        # The bounds themselves are accepted.
        ok = client.post("/v1/agents", json={"id": "edge", "wasm": module(agents["echo"]),
                                             "limits": {"fuel": 10**12, "deadline": "1ms", "memory": "4Mi"}})
        assert ok.status_code == 201, ok.text
        assert client.get("/v1/agents/edge").json()["limits"] == {
            "memory_bytes": 4 * MiB, "deadline_seconds": 0.001, "fuel": 10**12}
