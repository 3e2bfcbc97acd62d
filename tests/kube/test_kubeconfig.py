"""Reading kubeconfigs the way kubectl does, without the kubernetes package: files of
$KUBECONFIG merged (the first to define a name wins), contexts, data or file fields
(relative to their file), exec credential plugins, and clear errors."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_kube.kubeconfig import KubeconfigError, current_context, in_cluster, load


def write(path: Path, *, current: str = "", clusters: dict[str, Any] | None = None,
          users: dict[str, Any] | None = None, contexts: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": k, "cluster": v} for k, v in (clusters or {}).items()],
        "users": [{"name": k, "user": v} for k, v in (users or {}).items()],
        "contexts": [{"name": k, "context": v} for k, v in (contexts or {}).items()],
    }))
    return path


def test_kubeconfig_files_merge_first_definition_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "a", current="dev", clusters={"c": {"server": "https://first:6443/"}},
                  contexts={"dev": {"cluster": "c", "user": "u", "namespace": "team"}})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ca.crt").write_bytes(b"PEM-CA")
    second = write(tmp_path / "sub" / "b", current="prod",
                   clusters={"c": {"server": "https://second:6443"},
                             "p": {"server": "https://prod:6443", "certificate-authority": "ca.crt"}},
                   users={"u": {"token": "t0k"}}, contexts={"prod": {"cluster": "p", "user": "u"}})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)]))
    creds = load()
    assert (creds.server, creds.namespace, creds.token) == ("https://first:6443", "team", "t0k")
    prod = load(context="prod")
    assert (prod.server, prod.namespace, prod.ca_pem) == ("https://prod:6443", "default", b"PEM-CA")
    assert current_context() == ("dev", {"cluster": "c", "user": "u", "namespace": "team"})


def test_data_fields_and_an_explicit_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config", current="x", clusters={"c": {
        "server": "https://h:1", "certificate-authority-data": base64.b64encode(b"CA").decode(),
        "insecure-skip-tls-verify": True, "tls-server-name": "api.internal"}},
        users={"u": {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                     "client-key-data": base64.b64encode(b"KEY").decode()}},
        contexts={"x": {"cluster": "c", "user": "u"}})
    creds = load(path)
    assert (creds.ca_pem, creds.client_cert_pem, creds.client_key_pem) == (b"CA", b"CERT", b"KEY")
    assert creds.insecure and creds.tls_server_name == "api.internal"


def test_exec_credential_plugin_gives_the_token(tmp_path: Path) -> None:
    plugin = tmp_path / "cred.sh"
    plugin.write_text("#!/bin/sh\n"
                      "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
                      "\"status\":{\"token\":\"'$PREFIX'-from-plugin\"}}'\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    path = write(tmp_path / "config", current="x", clusters={"c": {"server": "https://h:1"}},
                 users={"u": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
                                       "env": [{"name": "PREFIX", "value": "abc"}]}}},
                 contexts={"x": {"cluster": "c", "user": "u"}})
    assert load(path).token == "abc-from-plugin"


@pytest.mark.parametrize(("config", "context", "message"), [
    ({"current": ""}, None, "no current-context"),
    ({"current": "x"}, "nope", "context 'nope' is not in the kubeconfig"),
    ({"current": "x", "contexts": {"x": {"cluster": "gone", "user": "u"}}}, None, "names cluster 'gone'"),
    ({"current": "x", "clusters": {"c": {}}, "contexts": {"x": {"cluster": "c"}}}, None, "has no server"),
    ({"current": "x", "clusters": {"c": {"server": "https://h", "certificate-authority": "/nonexistent/ca"}},
      "contexts": {"x": {"cluster": "c"}}}, None, "cannot read certificate-authority"),
])
def test_errors_name_what_is_wrong(tmp_path: Path, config: dict[str, Any], context: str | None,
                                   message: str) -> None:
    path = write(tmp_path / "config", **config)
    with pytest.raises(KubeconfigError, match=message):
        load(path, context=context)


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="no kubeconfig at"):
        load(tmp_path / "absent")
    (tmp_path / "list").write_text(json.dumps([1, 2]))
    with pytest.raises(KubeconfigError, match="not a mapping"):
        load(tmp_path / "list")


def test_outside_a_pod_there_is_no_service_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert in_cluster() is None
