"""Pods bound to the process kubelet really run, restart, stop and keep their data."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.local.manifests import pod, web_statefulset
from tests.support.cluster import ClusterUnderTest, pod_ready
from tests.support.waiting import wait_for


def _pods(cluster: ClusterUnderTest, ns: str, app: str) -> list[dict[str, Any]]:
    return list(cluster.kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"app={app}")["items"])


def _proxy_get(cluster: ClusterUnderTest, ns: str, pod_name: str, path: str) -> str:
    resp = cluster.kube.raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod_name}:8080/proxy/{path}")
    assert resp.status_code == 200, resp.text
    return resp.text


def _pid(pod_obj: dict[str, Any]) -> int:
    container_id = pod_obj["status"]["containerStatuses"][0]["containerID"]
    return int(container_id.removeprefix("process://"))


def test_statefulset_pods_run_on_their_own_loopback_addresses(
    process_cluster: ClusterUnderTest, namespace: str
) -> None:
    c = process_cluster
    c.apply(web_statefulset("web", 3, script='echo "$POD_NAME" > /data/name'), namespace)

    def all_ready() -> list[dict[str, Any]] | None:
        pods = _pods(c, namespace, "web")
        return pods if len(pods) == 3 and all(pod_ready(p) for p in pods) else None

    pods = wait_for(all_ready, timeout=120, what="3 Ready pods")
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 3
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8") for ip in ips)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    for p in pods:
        name = p["metadata"]["name"]
        # Each pod's own process answers through the API server's pod proxy.
        assert _proxy_get(c, namespace, name, "name").strip() == name
        assert Path(f"/proc/{_pid(p)}").exists()
    wide = c.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    assert all(ip in wide for ip in ips)


def test_crashing_container_restarts_with_growing_backoff(process_cluster: ClusterUnderTest, namespace: str) -> None:
    c = process_cluster
    c.apply(pod("crasher", image="busybox", command=["sh", "-c", "exit 3"]), namespace)
    path = f"/api/v1/namespaces/{namespace}/pods/crasher"
    backoffs: list[int] = []

    def restarted_three_times() -> bool:
        status = c.kube.get(path)["status"].get("containerStatuses", [{}])[0]
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            seconds = int(re.search(r"back-off (\d+)s", waiting["message"]).group(1))  # type: ignore[union-attr]
            if not backoffs or backoffs[-1] != seconds:
                backoffs.append(seconds)
        return bool(status.get("restartCount", 0) >= 3 and len(backoffs) >= 3)

    wait_for(restarted_three_times, timeout=90, what="three restarts", interval=0.1)
    final = c.kube.get(path)["status"]["containerStatuses"][0]
    assert final["lastState"]["terminated"]["exitCode"] == 3
    assert backoffs[:3] == sorted(set(backoffs[:3])), backoffs
    assert backoffs[2] >= 4 * backoffs[0], backoffs


def test_deleted_pod_stops_its_process_and_disappears(process_cluster: ClusterUnderTest, namespace: str) -> None:
    c = process_cluster
    c.apply(pod("sleeper", image="busybox", command=["sleep", "3600"]), namespace)
    path = f"/api/v1/namespaces/{namespace}/pods/sleeper"
    running = wait_for(
        lambda: (p := c.kube.get(path)) and p["status"].get("phase") == "Running" and p,
        timeout=60, what="sleeper running",
    )
    pid = _pid(running)
    assert Path(f"/proc/{pid}").exists()
    c.kubectl("delete", "pod", "-n", namespace, "sleeper", "--wait=true", "--timeout=60s")
    assert c.kube.get_or_none(path) is None
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what=f"pid {pid} to exit")


def test_unknown_image_backs_off_like_a_failed_pull(process_cluster: ClusterUnderTest, namespace: str) -> None:
    c = process_cluster
    c.apply(pod("ghost", image="registry.invalid/ghost:1.0", command=["ghost"]), namespace)
    path = f"/api/v1/namespaces/{namespace}/pods/ghost"
    seen: set[str] = set()

    def pull_backoff() -> bool:
        statuses = c.kube.get(path)["status"].get("containerStatuses") or [{}]
        reason = statuses[0].get("state", {}).get("waiting", {}).get("reason", "")
        seen.add(reason)
        return reason == "ImagePullBackOff"

    wait_for(pull_backoff, timeout=60, what="ImagePullBackOff", interval=0.1)
    assert "ErrImagePull" in seen
    status = c.kube.get(path)["status"]
    assert status["phase"] == "Pending"
    assert "registry.invalid/ghost" in status["containerStatuses"][0]["state"]["waiting"]["message"]


def test_pvc_data_survives_pod_deletion(process_cluster: ClusterUnderTest, namespace: str) -> None:
    c = process_cluster
    c.apply(web_statefulset(
        "keeper", 1, with_pvc=True, script='test -f /data/first || echo "$POD_UID" > /data/first',
    ), namespace)

    def ready_pod() -> dict[str, Any] | None:
        pods = _pods(c, namespace, "keeper")
        return pods[0] if pods and pod_ready(pods[0]) and not pods[0]["metadata"].get("deletionTimestamp") else None

    first = wait_for(ready_pod, timeout=120, what="keeper-0 Ready")
    first_uid = first["metadata"]["uid"]
    assert _proxy_get(c, namespace, "keeper-0", "first").strip() == first_uid
    c.kubectl("delete", "pod", "-n", namespace, "keeper-0", "--wait=true", "--timeout=60s")
    second = wait_for(
        lambda: (p := ready_pod()) and p["metadata"]["uid"] != first_uid and p,
        timeout=120, what="a new keeper-0",
    )
    assert second["metadata"]["uid"] != first_uid
    assert _proxy_get(c, namespace, "keeper-0", "first").strip() == first_uid


WHOAMI = """
import json, os, ssl, urllib.request, urllib.error
sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
ctx = ssl.create_default_context(cafile=sa + "ca.crt")
url = "https://%s:%s/api/v1/namespaces/default/secrets" % (
    os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + open(sa + "token").read()})
try:
    urllib.request.urlopen(req, context=ctx)
    out = "allowed"
except urllib.error.HTTPError as err:
    out = json.loads(err.read())["message"]
open("/data/whoami", "w").write(out)
"""


def test_pod_gets_service_account_credentials_and_hostname(process_cluster: ClusterUnderTest, namespace: str) -> None:
    c = process_cluster
    (Path(c.kubeconfig).parent / "whoami.py").write_text(WHOAMI)
    script = (
        "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace > /data/ns; hostname > /data/host; "
        f"python3 {Path(c.kubeconfig).parent / 'whoami.py'}"
    )
    c.apply(web_statefulset("sa", 1, script=script), namespace)
    wait_for(lambda: (pods := _pods(c, namespace, "sa")) and pod_ready(pods[0]), timeout=90, what="sa-0 Ready")
    assert _proxy_get(c, namespace, "sa-0", "ns").strip() == namespace
    assert _proxy_get(c, namespace, "sa-0", "host").strip() == "sa-0"
    # The mounted token authenticates as the pod's service account (which may not list secrets).
    whoami = _proxy_get(c, namespace, "sa-0", "whoami")
    assert f"system:serviceaccount:{namespace}:default" in whoami, whoami


DNS_PROBE = """
import json, socket, time
names = ["web-0.web", "web-1.web", "web"]
out = {}
deadline = time.time() + 20  # records follow pods within a couple of seconds, as in any cluster
while True:
    for name in names:
        try:
            out[name] = sorted({info[4][0] for info in socket.getaddrinfo(name, 8080, socket.AF_INET)})
        except OSError as err:
            out[name] = str(err)
    if all(isinstance(v, list) for v in out.values()) and len(out["web"]) == 2 or time.time() > deadline:
        break
    time.sleep(0.5)
open("/data/dns", "w").write(json.dumps(out))
"""


def test_pods_find_each_other_through_cluster_dns(process_cluster: ClusterUnderTest, namespace: str) -> None:
    c = process_cluster
    c.apply(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "publishNotReadyAddresses": True,
                 "ports": [{"name": "http", "port": 8080}]},
    }), namespace)
    c.apply(web_statefulset("web", 2, script='echo "$POD_NAME" > /data/name'), namespace)
    def two_ready() -> list[dict[str, Any]] | None:
        pods = _pods(c, namespace, "web")
        return pods if len(pods) == 2 and all(pod_ready(p) for p in pods) else None

    pods = wait_for(two_ready, timeout=120, what="2 web pods Ready")
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    probe_script = Path(c.kubeconfig).parent / "dns_probe.py"
    probe_script.write_text(DNS_PROBE)
    c.apply(web_statefulset("dig", 1, script=f"python3 {probe_script}"), namespace)
    wait_for(lambda: (p := _pods(c, namespace, "dig")) and pod_ready(p[0]), timeout=90, what="dig-0 Ready")
    answers = json.loads(_proxy_get(c, namespace, "dig-0", "dns"))
    assert answers["web-0.web"] == [ips["web-0"]]
    assert answers["web-1.web"] == [ips["web-1"]]
    assert answers["web"] == sorted(ips.values())
