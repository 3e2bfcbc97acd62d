"""End to end: CaxtonBackup to a real S3 server (versitygw), and restoring a deleted cluster
from it with `kubectl caxton backup restore`, on real pods of the local control plane.

One operator install, one namespace, one S3 server and one backed-up cluster for the
module; the cases run in file order, each from where the previous left things. Load
during the backup is counted by tests/support/load.py; the messages queued at the
snapshot are numbered and counted after the restore.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_plugin_e2e import kubectl_caxton
from tests.operator.test_upgrade_e2e import cxc_path, diagnose, make_cluster, pods_of, start_load
from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.operator_release import operator_release
from tests.support.pod_proxy import NodeProxy
from tests.support.s3 import S3Server, s3_server
from tests.support.waiting import wait_for

QUEUED = 40  # numbered messages held in a suspended agent's queue when the snapshot is taken
BACKUP = "full-1"


@pytest.fixture(scope="module")
def release(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    if not crds.has_process_kubelet:
        pytest.skip("the S3 server runs on this machine's loopback: the pods must run here too")
    yield from operator_release(crds)


@pytest.fixture(scope="module")
def ns(release: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(release)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def creds(release: ClusterUnderTest, ns: str, s3: S3Server) -> str:
    """A Secret with the S3 server's credentials, as a user makes one."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": ns},
              "stringData": {"accessKeyId": s3.creds.access_key_id, "secretAccessKey": s3.creds.secret_access_key}}
    release.kube.create(f"/api/v1/namespaces/{ns}/secrets", secret)
    return "s3-creds"


def bkp_path(ns: str, name: str = "") -> str:
    return f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonbackups" + (f"/{name}" if name else "")


def plugin(cluster: ClusterUnderTest, ns: str, *args: str, timeout: float = 600) -> Any:
    return kubectl_caxton(cluster, "-n", ns, *args, timeout=timeout)


class Proxy(NodeProxy):
    """A node's API through the API server's pod proxy."""

    def where(self, agent: str, pods: list[str]) -> str | None:
        for pod in pods:
            if any(a["id"] == agent for a in self.call(pod, "GET", "/v1/agents")):
                return pod
        return None


def send(proxy: Proxy, pod: str, receiver: str, content: Any, sender: str) -> None:
    proxy.call(pod, "POST", "/v1/messages", json={"performative": "request", "sender": sender,
                                                 "receiver": receiver, "content": content})


def collect(proxy: Proxy, pod: str, mailbox: str, count: int) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []

    def enough() -> bool:
        replies.extend(proxy.call(pod, "GET", f"/v1/mailboxes/{mailbox}", params={"wait": 1, "limit": 10000}))
        return len(replies) >= count

    wait_for(enough, timeout=120, what=f"{count} replies in {mailbox}", interval=0)
    return replies


def backup_status(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, Any]:
    return dict((cluster.kube.get_or_none(bkp_path(ns, name)) or {}).get("status") or {})


def apply_backup(cluster: ClusterUnderTest, ns: str, name: str, s3: S3Server, secret: str, *,
                 endpoint: str = "", **spec: Any) -> None:
    cluster.kube.create(bkp_path(ns), {
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonBackup", "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterRef": {"name": "demo"}, "destination": {
            "path": "s3://backups/e2e/", "endpoint": endpoint or s3.endpoint, "s3Credentials": {"secretName": secret}},
            **spec}})


def wait_finished(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        status = backup_status(cluster, ns, name)
        return status if status.get("phase") in ("Completed", "Failed") else None

    try:
        return wait_for(finished, timeout=300, what=f"CaxtonBackup {name} to finish", interval=0.5)
    except AssertionError:
        print(diagnose(cluster, ns, "demo"))
        raise


# -- the cases, in order ---------------------------------------------------------------------------------------

def test_backup_under_load_then_restore_delivers_every_queued_message(release: ClusterUnderTest, ns: str,
                                                                      s3: S3Server, creds: str) -> None:
    cluster = release
    make_cluster(cluster, ns, "demo", 3, echo=3)
    proxy = Proxy(cluster, ns)
    pods = [p["metadata"]["name"] for p in pods_of(cluster, ns, "demo")]
    wasm = build_example_agents()["echo"]
    proxy.call("demo-1", "POST", "/v1/agents", json={"id": "held", "wasm": base64.b64encode(wasm).decode(),
                                                    "limits": {"memory": "4Mi", "deadline": "200ms"}})
    proxy.call("demo-1", "POST", "/v1/agents/held/suspend")
    for n in range(QUEUED):
        send(proxy, "demo-1", "held", {"n": n}, sender="counter")
    load = start_load(cluster, ns, "demo", agents=3, rate=40)
    try:
        result = plugin(cluster, ns, "backup", "create", "--type", "full", "--destination", "s3://backups/e2e/",
                        "--endpoint", s3.endpoint, "--credentials-secret", creds, "--compress", "--id", BACKUP,
                        "--wait", "--timeout", "300")
    finally:
        report = load.stop()
    assert result.returncode == 0, f"{result.stderr}\n{diagnose(cluster, ns, 'demo')}"
    assert result.stderr.splitlines()[-1] == f"{BACKUP}: Completed 3/3", result.stderr  # the last progress line
    status = backup_status(cluster, ns, BACKUP)
    assert status["phase"] == "Completed" and status["id"] == BACKUP
    assert [n["name"] for n in status["nodes"]] == ["demo-0", "demo-1", "demo-2"]
    assert all(n["phase"] == "Completed" and n["objects"] > 0 for n in status["nodes"])
    assert sum(n["queuedMessages"] for n in status["nodes"]) >= QUEUED
    assert sum(n["agents"] for n in status["nodes"]) == 4  # three echo replicas and held
    assert status["sizeBytes"] > 0 and status["progress"] == "3/3"
    assert report.answered > 0 and report.lost == 0, report.as_dict()
    manifest = json.loads((s3.object_path("backups", f"e2e/{BACKUP}/manifest.json")).read_bytes())
    assert manifest["id"] == BACKUP and manifest["cluster"]["name"] == "demo"
    assert all(o["compression"] == "zstd" for o in manifest["objects"] if o["kind"] != "index")
    listed = plugin(cluster, ns, "backup", "list")
    assert listed.returncode == 0 and BACKUP in listed.stdout and "Completed" in listed.stdout, listed.stderr
    verified = plugin(cluster, ns, "backup", "verify", "--id", BACKUP)
    assert verified.returncode == 0, verified.stderr
    assert "every checksum and SQLite integrity check passed" in verified.stdout

    cluster.kube.delete(cxc_path(ns, "demo"))
    # The CaxtonCluster itself goes last (its finalizer), and a restore needs its name free.
    wait_for(lambda: not pods_of(cluster, ns, "demo") and not cluster.kube.get(
        f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"] and cluster.kube.get_or_none(
        cxc_path(ns, "demo")) is None, timeout=180, what="the deleted cluster, its pods and volumes to go")

    restored = plugin(cluster, ns, "backup", "restore", "--id", BACKUP, "--wait", "--timeout", "300")
    assert restored.returncode == 0, f"{restored.stderr}\n{diagnose(cluster, ns, 'demo')}"
    spec = cluster.kube.get(cxc_path(ns, "demo"))["spec"]
    assert spec["bootstrap"]["fromBackup"]["id"] == BACKUP and spec["replicas"] == 3
    proxy = Proxy(cluster, ns)  # the restored cluster has an API token of its own
    wait_for(lambda: all(pod_ready(p) for p in pods_of(cluster, ns, "demo")) and len(pods_of(cluster, ns, "demo"))
             == 3, timeout=120, what="3 ready pods")
    # The echo replicas answer, each through the node it is on.
    for i in range(3):
        agent = f"demo-echo-{i}"
        pod: str = wait_for(lambda agent=agent: proxy.where(agent, pods), timeout=60,  # type: ignore[misc]
                            what=f"{agent} restored")
        mailbox = f"tester-{uuid.uuid4().hex[:6]}"
        proxy.call(pod, "GET", f"/v1/mailboxes/{mailbox}")
        send(proxy, pod, agent, {"ping": i}, sender=mailbox)
        assert collect(proxy, pod, mailbox, 1)[0]["content"]["content"] == {"ping": i}
    # Every message queued at the snapshot is delivered once held resumes.
    held = proxy.where("held", pods)
    assert held is not None
    agent = next(a for a in proxy.call(held, "GET", "/v1/agents") if a["id"] == "held")
    assert agent["state"] == "suspended" and agent["queue"] == QUEUED
    assert agent["limits"]["memory_bytes"] == 4 * 2**20
    proxy.call(held, "GET", "/v1/mailboxes/counter")
    proxy.call(held, "POST", "/v1/agents/held/resume")
    numbers = sorted(r["content"]["content"]["n"] for r in collect(proxy, held, "counter", QUEUED))
    assert numbers == list(range(QUEUED))


def test_a_flipped_byte_is_named_by_verify_and_refused_by_restore(release: ClusterUnderTest, ns: str,
                                                                   s3: S3Server) -> None:
    manifest = json.loads((s3.object_path("backups", f"e2e/{BACKUP}/manifest.json")).read_bytes())
    victim = next(o["key"] for o in manifest["objects"] if o["kind"] == "sqlite" and o["node"] == "demo-2")
    path = s3.object_path("backups", f"e2e/{BACKUP}/{victim}")
    original = path.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x20
    path.write_bytes(bytes(flipped))
    try:
        verified = plugin(release, ns, "backup", "verify", "--id", BACKUP)
        assert verified.returncode == 3, verified.stderr
        problems = [line for line in verified.stderr.splitlines() if not line.startswith("error:")]
        assert problems == [f"{BACKUP}: {victim}: sha256 {hashlib.sha256(flipped).hexdigest()}, "
                            f"manifest says {next(o['sha256'] for o in manifest['objects'] if o['key'] == victim)}"]
        refused = plugin(release, ns, "backup", "restore", "--id", BACKUP, "--target", "from-damaged")
        assert refused.returncode == 3 and victim in refused.stderr, refused.stderr
        assert release.kube.get_or_none(cxc_path(ns, "from-damaged")) is None
    finally:
        path.write_bytes(original)


def test_bad_credentials_and_endpoint_fail_with_the_s3_error(release: ClusterUnderTest, ns: str,
                                                              s3: S3Server) -> None:
    release.kube.create(f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong-creds", "namespace": ns},
        "stringData": {"accessKeyId": s3.creds.access_key_id, "secretAccessKey": "not-the-secret"}})
    apply_backup(release, ns, "wrong-secret", s3, "wrong-creds")
    apply_backup(release, ns, "nowhere", s3, "s3-creds", endpoint="http://127.0.0.1:9")
    apply_backup(release, ns, "no-secret", s3, "missing-secret")
    wrong = wait_finished(release, ns, "wrong-secret")
    assert (wrong["phase"], wrong["reason"]) == ("Failed", "S3Error") and "SignatureDoesNotMatch" in wrong["message"]
    nowhere = wait_finished(release, ns, "nowhere")
    assert (nowhere["phase"], nowhere["reason"]) == ("Failed", "S3Error")
    assert "Unreachable" in nowhere["message"] and "127.0.0.1:9" in nowhere["message"]
    missing = wait_finished(release, ns, "no-secret")
    assert (missing["phase"], missing["reason"]) == ("Failed", "CredentialsMissing")
    assert "missing-secret does not exist" in missing["message"]


def test_an_id_already_at_the_destination_is_never_overwritten(release: ClusterUnderTest, ns: str,
                                                                s3: S3Server, creds: str) -> None:
    root = s3.object_path("backups", f"e2e/{BACKUP}")
    before = {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}
    apply_backup(release, ns, "again", s3, creds, id=BACKUP)
    status = wait_finished(release, ns, "again")
    assert (status["phase"], status["reason"]) == ("Failed", "BackupExists")
    assert "never overwritten" in status["message"]
    assert {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()} == before


def test_restore_into_a_cluster_of_another_size_is_refused(release: ClusterUnderTest, ns: str) -> None:
    release.kube.create(cxc_path(ns), {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster",
                                       "metadata": {"name": "small", "namespace": ns},
                                       "spec": {"replicas": 1, "version": "1.2.0", "storage": {"size": "64Mi"}}})
    try:
        refused = plugin(release, ns, "backup", "restore", "--id", BACKUP, "--target", "small")
        assert refused.returncode == 1
        assert f"backup {BACKUP} holds 3 node(s) but CaxtonCluster small has 1 replicas" in refused.stderr
        taken = plugin(release, ns, "backup", "restore", "--id", BACKUP)  # demo exists again
        assert taken.returncode == 1 and "CaxtonCluster demo already exists" in taken.stderr
    finally:
        release.kube.delete(cxc_path(ns, "small"))


def test_the_same_backup_to_a_volume_restores_a_cluster(release: ClusterUnderTest, ns: str) -> None:
    cluster = release
    cluster.kube.create(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "backup-vol", "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                 "resources": {"requests": {"storage": "64Mi"}}}})
    cluster.kube.create(bkp_path(ns), {
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonBackup", "metadata": {"name": "to-volume", "namespace": ns},
        "spec": {"clusterRef": {"name": "demo"}, "destination": {"path": "pvc://backup-vol/nightly/"}}})
    status = wait_finished(cluster, ns, "to-volume")
    assert status["phase"] == "Completed", status
    assert [n["name"] for n in status["nodes"]] == ["demo-0", "demo-1", "demo-2"]
    # The pod that served the claim is gone once the backup is done.
    wait_for(lambda: cluster.kube.get_or_none(f"/api/v1/namespaces/{ns}/pods/to-volume-volume") is None,
             timeout=60, what="the volume pod to go")
    cluster.kube.create(cxc_path(ns), {
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster",
        "metadata": {"name": "from-volume", "namespace": ns},
        "spec": {"replicas": 3, "version": "1.2.0", "storage": {"size": "64Mi"}, "bootstrap": {"fromBackup": {
            "id": "to-volume", "destination": {"path": "pvc://backup-vol/nightly/"}}}}})
    try:
        wait_for(lambda: len([p for p in pods_of(cluster, ns, "from-volume") if pod_ready(p)]) == 3, timeout=240,
                 what="3 restored pods ready")
        proxy = Proxy(cluster, ns, "from-volume")
        pods = [f"from-volume-{i}" for i in range(3)]
        restored = sorted(a["id"] for pod in pods for a in proxy.call(pod, "GET", "/v1/agents"))
        assert restored == ["demo-echo-0", "demo-echo-1", "demo-echo-2", "held"]
    except AssertionError:
        print(diagnose(cluster, ns, "from-volume"))
        raise
    finally:
        cluster.kube.delete(cxc_path(ns, "from-volume"))


def test_a_volume_that_does_not_exist_fails_the_backup(release: ClusterUnderTest, ns: str) -> None:
    release.kube.create(bkp_path(ns), {
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonBackup", "metadata": {"name": "no-volume", "namespace": ns},
        "spec": {"clusterRef": {"name": "demo"}, "destination": {"path": "pvc://missing-vol/x/"}}})
    status = wait_finished(release, ns, "no-volume")
    assert (status["phase"], status["reason"]) == ("Failed", "VolumeNotFound")
    assert "missing-vol" in status["message"]


def test_bootstrap_cannot_be_added_to_a_running_cluster(release: ClusterUnderTest, ns: str) -> None:
    result = release.kubectl("patch", "cxc", "demo", "-n", ns, "--type=merge", "-p", json.dumps(
        {"spec": {"bootstrap": {"fromBackup": {"id": "other", "destination": {"path": "pvc://vol/x/"}}}}}),
        check=False)
    assert result.returncode != 0
    assert "bootstrap is immutable: it applies only when the cluster is created" in result.stderr


def test_stop_all_then_start_verify_keeps_every_agent_and_message(release: ClusterUnderTest, ns: str) -> None:
    cluster = release
    proxy = Proxy(cluster, ns)
    pods = [f"demo-{i}" for i in range(3)]
    held = proxy.where("held", pods)
    assert held is not None
    proxy.call(held, "POST", "/v1/agents/held/suspend")
    for n in range(QUEUED):
        send(proxy, held, "held", {"n": 1000 + n}, sender="counter")
    before = sorted(a["id"] for pod in pods for a in proxy.call(pod, "GET", "/v1/agents"))
    claims = sorted(c["metadata"]["name"] for c in cluster.kube.get(
        f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"] if c["metadata"]["name"].startswith("data-demo"))
    assert len(claims) == 3

    stopped = plugin(cluster, ns, "--cluster", "demo", "cluster", "stop", "--all")
    assert stopped.returncode == 0, f"{stopped.stderr}\n{diagnose(cluster, ns, 'demo')}"
    assert "demo: Hibernated" in stopped.stderr
    status = cluster.kube.get(cxc_path(ns, "demo"))["status"]
    assert status["phase"] == "Hibernated" and not pods_of(cluster, ns, "demo")
    assert sorted(c["metadata"]["name"] for c in cluster.kube.get(
        f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"] if c["metadata"]["name"].startswith(
        "data-demo")) == claims

    started = plugin(cluster, ns, "--cluster", "demo", "cluster", "start", "--verify")
    assert started.returncode == 0, f"{started.stdout}{started.stderr}\n{diagnose(cluster, ns, 'demo')}"
    assert "OK: 3 node(s) agree, every member consistent" in started.stdout
    assert sorted(a["id"] for pod in pods for a in proxy.call(pod, "GET", "/v1/agents")) == before
    agent = next(a for a in proxy.call(held, "GET", "/v1/agents") if a["id"] == "held")
    assert agent["state"] == "suspended" and agent["queue"] == QUEUED
    proxy.call(held, "GET", "/v1/mailboxes/counter")
    proxy.call(held, "POST", "/v1/agents/held/resume")
    numbers = sorted(r["content"]["content"]["n"] for r in collect(proxy, held, "counter", QUEUED))
    assert numbers == [1000 + n for n in range(QUEUED)]


def test_delete_purges_only_the_backup_s_own_objects(release: ClusterUnderTest, ns: str, s3: S3Server) -> None:
    root = s3.object_path("backups", f"e2e/{BACKUP}")
    kept = sorted(p for p in Path(root).rglob("*") if p.is_file())
    refused = plugin(release, ns, "backup", "delete", "--id", "again", "--purge")  # Failed: BackupExists
    assert refused.returncode == 0, refused.stderr
    assert release.kube.get_or_none(bkp_path(ns, "again")) is None
    assert sorted(p for p in Path(root).rglob("*") if p.is_file()) == kept  # full-1's, not again's
    purged = plugin(release, ns, "backup", "delete", "--id", BACKUP, "--purge")
    assert purged.returncode == 0, purged.stderr
    assert f"{len(kept)} object(s) removed from s3://backups/e2e/" in purged.stdout
    assert not [p for p in Path(root).rglob("*") if p.is_file()]
    listed = plugin(release, ns, "backup", "list")
    assert listed.returncode == 0 and BACKUP not in listed.stdout
    missing = plugin(release, ns, "backup", "verify", "--id", BACKUP)
    assert missing.returncode == 4 and f"no CaxtonBackup with id {BACKUP}" in missing.stderr
