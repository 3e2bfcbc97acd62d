"""A node's online snapshot, stored in a real S3 server (versitygw) and restored into a
fresh node: its agents keep their limits and every queued message is delivered."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from caxton_node.backup import archive
from caxton_node.backup import format as fmt
from caxton_node.backup.destinations import ObjectStore, open_store, parse
from caxton_node.backup.s3 import Credentials, S3Client, S3Error
from caxton_node.backup.volume_server import serve

from tests.support import addresses
from tests.support.agents import agent, collect, deploy, send
from tests.support.nodes import NodeFactory
from tests.support.s3 import S3Server, free_port, s3_server
from tests.support.waiting import wait_for

QUEUED = 25


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def backed_up_node(node_factory: NodeFactory, agents: dict[str, bytes], store: ObjectStore, *, zstd: bool) -> None:
    """A node with a suspended echo agent holding QUEUED messages, backed up into `store`."""
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"], memory="4Mi", fuel=1_000_000).status_code == 201
        assert client.post("/v1/agents/echo/suspend").status_code == 200
        for n in range(QUEUED):
            send(client, "echo", {"n": n}, sender="counter")
        assert agent(client, "echo")["queue"] == QUEUED
        resp = client.get("/v1/backup/snapshot")
        assert resp.status_code == 200, resp.text
    archive.ensure_new(store, "b1")
    archive.write_node(store, "node-0", resp.content, zstd=zstd)
    archive.finish(store, backup_id="b1", cluster={"name": "solo"}, nodes=["node-0"],
                   created_at="2026-01-01T00:00:00Z", extra=[], include_secrets=False)
    node.stop()


@pytest.mark.parametrize("zstd", [False, True], ids=["plain", "zstd"])
def test_restored_node_delivers_every_queued_message(node_factory: NodeFactory, agents: dict[str, bytes],
                                                     s3: S3Server, zstd: bool) -> None:
    client = s3.client()
    store = open_store(parse(f"s3://backups/restore-{int(zstd)}/"), "b1", s3=client)
    backed_up_node(node_factory, agents, store, zstd=zstd)
    manifest, problems = archive.verify(store)
    assert problems == []
    assert manifest is not None
    kinds = sorted({o["kind"] for o in manifest["objects"]})
    assert kinds == ["agents", "index", "messages", "module", "node", "sqlite"]
    assert all(o["compression"] == ("zstd" if zstd else "") for o in manifest["objects"] if o["kind"] != "index")

    fresh = node_factory("restored", start=False)
    result = archive.restore_node(store, ordinal=0, replicas=1, data_dir=fresh.root / "data")
    assert result["restored"] is True
    fresh.start()
    with fresh.client() as api:
        restored = agent(api, "echo")
        assert restored["state"] == "suspended"
        assert restored["limits"]["memory_bytes"] == 4 * 2**20 and restored["limits"]["fuel"] == 1_000_000
        assert restored["queue"] == QUEUED
        # Client mailboxes live in memory: the client opens its own again before the replies come.
        assert api.get("/v1/mailboxes/counter").status_code == 200
        assert api.post("/v1/agents/echo/resume").status_code == 200
        replies = collect(api, "counter", QUEUED)
    assert sorted(r["content"]["content"]["n"] for r in replies) == list(range(QUEUED))
    # Restoring again into the same directory is a no-op; into another node's state, refused.
    assert archive.restore_node(store, ordinal=0, replicas=1, data_dir=fresh.root / "data")["restored"] is False


def test_flipped_byte_is_named_and_restore_writes_nothing(node_factory: NodeFactory, agents: dict[str, bytes],
                                                          s3: S3Server, tmp_path: Path) -> None:
    store = open_store(parse("s3://backups/flip/"), "b1", s3=s3.client())
    backed_up_node(node_factory, agents, store, zstd=False)
    manifest, _ = archive.verify(store)
    assert manifest is not None
    module = next(o for o in manifest["objects"] if o["kind"] == "module")
    path = s3.object_path("backups", f"flip/b1/{module['key']}")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    _, problems = archive.verify(store)
    assert len(problems) == 1 and problems[0].startswith(f"{module['key']}: sha256 "), problems
    with pytest.raises(archive.RestoreRefused, match=module["key"]):
        archive.restore_node(store, ordinal=0, replicas=1, data_dir=tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_corrupt_database_fails_the_integrity_check(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    conn.commit()
    conn.close()
    data = bytearray(db.read_bytes())
    data[4096:4096 + 12] = b"\xff" * 12  # the header of the second page: the table's b-tree root
    entry, stored = fmt.stored("nodes/n/caxton.db", bytes(data), kind="sqlite", node="n")
    problems = fmt.check_object(entry, stored)
    assert len(problems) == 1 and problems[0].startswith("nodes/n/caxton.db: SQLite integrity check failed"), problems


def test_same_id_is_never_overwritten(node_factory: NodeFactory, agents: dict[str, bytes], s3: S3Server) -> None:
    store = open_store(parse("s3://backups/twice/"), "b1", s3=s3.client())
    backed_up_node(node_factory, agents, store, zstd=False)
    before = {key: store.get(key) for key in store.list_keys()}
    with pytest.raises(archive.BackupExists, match="never overwritten"):
        archive.ensure_new(store, "b1")
    assert {key: store.get(key) for key in store.list_keys()} == before


def test_wrong_credentials_and_unreachable_endpoint_name_the_s3_error(s3: S3Server) -> None:
    wrong = S3Client(s3.endpoint, Credentials(s3.creds.access_key_id, "not-the-secret"))
    with pytest.raises(S3Error) as err:
        wrong.put("backups", "k", b"1")
    assert err.value.code == "SignatureDoesNotMatch", err.value
    unknown = S3Client(s3.endpoint, Credentials("nobody", "x"))
    with pytest.raises(S3Error) as err:
        unknown.list("backups")
    assert "access key" in str(err.value).lower(), err.value
    closed = S3Client("http://127.0.0.1:9", s3.creds, timeout=2)
    with pytest.raises(S3Error) as err:
        closed.list("backups")
    assert err.value.code == "Unreachable" and "127.0.0.1:9" in str(err.value)


def test_the_volume_server_keeps_keys_inside_and_wants_the_token(tmp_path: Path) -> None:
    host = f"{addresses.test_network()}.254.2"
    port = free_port(host)
    threading.Thread(target=serve, args=(tmp_path / "vol", host, port, "sekrit"), daemon=True).start()
    base = f"http://{host}:{port}"
    wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, timeout=10, what="the volume server")
    auth = {"X-Caxton-Token": "sekrit"}
    assert httpx.post(f"{base}/objects/b1/nodes/n/caxton.db", content=b"db", headers=auth).status_code == 200
    assert httpx.get(f"{base}/objects/b1/nodes/n/caxton.db", headers=auth).content == b"db"
    assert httpx.get(f"{base}/objects/b1/", headers=auth).json() == ["nodes/n/caxton.db"]
    assert (tmp_path / "vol" / "b1" / "nodes" / "n" / "caxton.db").read_bytes() == b"db"
    assert httpx.get(f"{base}/objects/b1/missing", headers=auth).json()["code"] == "no_such_key"
    assert httpx.get(f"{base}/objects/b1/nodes/n/caxton.db").status_code == 401
    assert httpx.post(f"{base}/objects/b1/x", content=b"1", headers={"X-Caxton-Token": "wrong"}).status_code == 401
    escape = httpx.post(f"{base}/objects/b1/..%2F..%2Fescaped", content=b"1", headers=auth)
    assert escape.status_code == 400 and "leaves the backup's directory" in escape.json()["message"]
    assert not (tmp_path / "escaped").exists()
    assert httpx.delete(f"{base}/objects/b1/nodes/n/caxton.db", headers=auth).status_code == 200
    assert httpx.get(f"{base}/objects/b1/", headers=auth).json() == []
