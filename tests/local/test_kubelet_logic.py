"""Pure parts of the process kubelet: image references, $(VAR) expansion, addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from caxton_local import toolchain
from caxton_local.kubelet.environment import expand
from caxton_local.kubelet.images import ImagePullError, ImageTable, split_reference
from caxton_local.kubelet.ipam import AddressPoolExhausted, LoopbackIPAM
from caxton_local.toolchain import SUPPORTED_GO, ToolchainError


@pytest.mark.parametrize(("reference", "expected"), [
    ("python:3.11", ("python", "3.11")),
    ("docker.io/library/python:3.11", ("python", "3.11")),
    ("busybox", ("busybox", "latest")),
    ("ghcr.io/caxton/caxton-node:1.2.0", ("ghcr.io/caxton/caxton-node", "1.2.0")),
    ("localhost:5000/app", ("localhost:5000/app", "latest")),
    ("app@sha256:abc", ("app", "sha256:abc")),
])
def test_split_reference(reference: str, expected: tuple[str, str]) -> None:
    assert split_reference(reference) == expected


def test_node_image_tag_becomes_its_version() -> None:
    resolved = ImageTable().resolve("ghcr.io/caxton/caxton-node:1.3.0")
    assert resolved.env == {"CAXTON_VERSION": "1.3.0"}
    assert resolved.entrypoint == ["caxton"]


def test_unknown_image_names_the_repository_and_table(tmp_path: Path) -> None:
    with pytest.raises(ImagePullError, match=r"repository nowhere/app is not in .*images\.yaml"):
        ImageTable(tmp_path / "images.yaml").resolve("nowhere/app:1")


def test_extra_images_come_from_the_table_file(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text(
        "images:\n  - {repository: example/app, entrypoint: [app], env: {V: '{tag}'}}\n"
    )
    assert ImageTable(tmp_path / "images.yaml").resolve("example/app:7").env == {"V": "7"}


def test_a_table_entry_may_take_over_one_tag_of_a_repository(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text(
        "images:\n  - {repository: ghcr.io/caxton/caxton-node, tag: 1.3.0-bad, entrypoint: [bad], path: [/x]}\n"
    )
    table = ImageTable(tmp_path / "images.yaml")
    assert table.resolve("ghcr.io/caxton/caxton-node:1.3.0-bad").path == ["/x"]
    assert table.resolve("ghcr.io/caxton/caxton-node:1.3.0").entrypoint == ["caxton"]


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"


def test_ipam_keeps_addresses_per_pod_and_reuses_released_ones(tmp_path: Path) -> None:
    ipam = LoopbackIPAM(tmp_path / "ipam.json", "127.0.9.2", "127.0.9.3")
    first = ipam.claim("uid-a")
    second = ipam.claim("uid-b")
    assert first != second
    assert ipam.claim("uid-a") == first
    with pytest.raises(AddressPoolExhausted):
        ipam.claim("uid-c")
    ipam.release("uid-a")
    assert ipam.claim("uid-c") == first
    # The table survives a restart of the kubelet.
    assert LoopbackIPAM(tmp_path / "ipam.json", "127.0.9.2", "127.0.9.3").claim("uid-b") == second


@pytest.mark.parametrize(("version", "problem"), [((1, 27, 0), "openapi/v2"), ((1, 24, 3), "too old")])
def test_go_version_check_refuses_known_bad_versions(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int], problem: str
) -> None:
    monkeypatch.setattr(toolchain, "go_version", lambda: version)
    with pytest.raises(ToolchainError, match=problem):
        toolchain.check_go()
    monkeypatch.setattr(toolchain, "go_version", lambda: (*SUPPORTED_GO, 8))
    assert toolchain.check_go() == f"{SUPPORTED_GO[0]}.{SUPPORTED_GO[1]}.8"


def _pod(name: str, ip: str, *, ready: bool, ns: str = "ns") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
            "spec": {"hostname": name, "subdomain": "web"},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_headless_service_records() -> None:
    from caxton_local.kubelet.dnsrecords import hosts_lines

    service = {"metadata": {"name": "web", "namespace": "ns"},
               "spec": {"clusterIP": "None", "selector": {"app": "web"}}}
    pods = [_pod("web-0", "127.0.1.2", ready=True), _pod("web-1", "127.0.1.3", ready=False),
            _pod("web-0", "127.0.1.9", ready=True, ns="other")]
    lines = hosts_lines([service], pods, "cluster.local")
    assert lines == [
        "127.0.1.2 web-0.web.ns.svc.cluster.local",
        "127.0.1.2 web.ns.svc.cluster.local",
        "127.0.1.3 web-1.web.ns.svc.cluster.local",
    ]
    service["spec"]["publishNotReadyAddresses"] = True  # type: ignore[index]
    assert "127.0.1.3 web.ns.svc.cluster.local" in hosts_lines([service], pods, "cluster.local")
