"""plugins/caxton.yaml against krew's validation rules (krew's
internal/index/validation and cmd/validate-krew-manifest), the ones that can be
checked without the network: then the archive it describes is built, checked against
its sha256, and installed the way krew installs it, and kubectl finds the plugin.

Not checked here: downloading the uri, and that the committed sha256 is that of the
published archive (`python plugins/build.py --write-manifest` writes it at release, for
the tree being released, so it does not change with every commit).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_local.toolchain import KUBERNETES

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "plugins" / "caxton.yaml"
API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# krew's list of <os, arch> it installs on (validate-krew-manifest's allPlatforms)
PLATFORMS = [("windows", "386"), ("windows", "amd64"), ("windows", "arm64"), ("linux", "386"), ("linux", "amd64"),
             ("linux", "arm"), ("linux", "arm64"), ("linux", "ppc64le"), ("darwin", "386"), ("darwin", "amd64"),
             ("darwin", "arm64")]
SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def selects(selector: dict[str, Any], os_name: str, arch: str) -> bool:
    """A Kubernetes label selector against the labels {os, arch}."""
    labels = {"os": os_name, "arch": arch}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, values = labels.get(expr["key"]), expr.get("values") or []
        matched = {"In": value in values, "NotIn": value not in values, "Exists": value is not None,
                   "DoesNotExist": value is None}[expr["operator"]]
        if not matched:
            return False
    return True


def validate_platform(platform: dict[str, Any]) -> list[str]:
    errors = []
    if not platform.get("uri"):
        errors.append("`uri` has to be set")
    if not platform.get("sha256"):
        errors.append("`sha256` sum has to be set")
    elif not re.fullmatch(r"[a-f0-9]{64}", str(platform["sha256"])):
        errors.append("`sha256` is not valid")
    if not platform.get("bin"):
        errors.append("`bin` has to be set")
    files = platform.get("files")
    if files is not None:
        if not files:
            errors.append("`files` has to be unspecified or non-empty")
        errors += [f"`files`: `{key}` field has to be set" for op in files for key in ("from", "to") if not op.get(key)]
    selector = platform.get("selector")
    if selector is None:
        errors.append("nil selector is not supported")
    else:
        labels, expressions = selector.get("matchLabels"), selector.get("matchExpressions")
        if not labels and not expressions:
            errors.append("empty selector is not supported")
        keys = [*(labels or {}), *(e.get("key") for e in expressions or [])]
        errors += [f"selector key {k!r} not supported" for k in keys if k not in ("os", "arch")]
    return errors


def validate(manifest: dict[str, Any], filename: str) -> list[str]:
    """krew's rules, as its validation code states them; an empty list is valid."""
    errors = []
    name = filename.removesuffix(".yaml")
    if not filename.endswith(".yaml"):
        errors.append("the manifest's extension must be .yaml")
    if manifest.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion must be {API_VERSION}")
    if manifest.get("kind") != "Plugin":
        errors.append("kind must be Plugin")
    if not re.fullmatch(r"[\w-]+", name) or name.upper() in WINDOWS_RESERVED:
        errors.append(f"the plugin name {name!r} is not allowed")
    if (manifest.get("metadata") or {}).get("name") != name:
        errors.append(f"plugin should be named {name!r} (the file name)")
    spec = manifest.get("spec") or {}
    short = spec.get("shortDescription") or ""
    if not short:
        errors.append("should have a short description")
    if "\n" in short or "\r" in short:
        errors.append("should not have line breaks in short description")
    if not SEMVER.match(str(spec.get("version") or "")):
        errors.append("version must be a semantic version with the 'v' prefix")
    platforms = spec.get("platforms") or []
    if not platforms:
        errors.append("should have a platform specified")
    for i, platform in enumerate(platforms):
        errors += [f"platforms[{i}]: {e}" for e in validate_platform(platform)]
        if not any(selects(platform.get("selector") or {}, *p) for p in PLATFORMS):
            errors.append(f"platforms[{i}]'s selector doesn't match any supported platform")
    for os_name, arch in PLATFORMS:
        matching = [i for i, p in enumerate(platforms) if selects(p.get("selector") or {}, os_name, arch)]
        if len(matching) > 1:
            errors.append(f"platforms {matching} have overlapping selectors for {os_name}/{arch}")
    # validate-krew-manifest warns about long lines; we hold ourselves to them.
    for field, limit in (("shortDescription", 70), ("description", 80), ("caveats", 80)):
        if any(len(line) > limit and " " in line.strip() for line in str(spec.get(field) or "").splitlines()):
            errors.append(f"a line of {field} is longer than {limit} characters")
    return errors


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return loaded


def test_the_manifest_follows_krews_rules() -> None:
    assert validate(manifest(), MANIFEST.name) == []
    assert manifest()["spec"]["version"] == f"v{_build().version()}"


def _broken(change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(manifest())
    change(broken)
    return broken


@pytest.mark.parametrize(("change", "error"), [
    (lambda m: m.update(apiVersion="krew.googlecontainertools.github.com/v1alpha1"), "apiVersion"),
    (lambda m: m["metadata"].update(name="kaxton"), "should be named 'caxton'"),
    (lambda m: m["spec"].update(shortDescription="two\nlines"), "line breaks"),
    (lambda m: m["spec"].update(version="0.1.0"), "'v' prefix"),
    (lambda m: m["spec"]["platforms"][0].update(sha256="ABC"), "`sha256` is not valid"),
    (lambda m: m["spec"]["platforms"][0].pop("bin"), "`bin` has to be set"),
    (lambda m: m["spec"]["platforms"][0].update(files=[]), "unspecified or non-empty"),
    (lambda m: m["spec"]["platforms"][0].update(selector={"matchLabels": {"distro": "debian"}}), "'distro'"),
    (lambda m: m["spec"]["platforms"][0].update(selector={"matchLabels": {"os": "plan9"}}), "doesn't match any"),
    (lambda m: m["spec"]["platforms"].append(copy.deepcopy(m["spec"]["platforms"][0])), "overlapping"),
])
def test_the_checks_catch_what_krew_refuses(change: Any, error: str) -> None:
    found = validate(_broken(change), "caxton.yaml")
    assert any(error in e for e in found), found


def _build() -> Any:
    spec = importlib.util.spec_from_file_location("plugins_build", ROOT / "plugins" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _install_like_krew(archive: Path, platform: dict[str, Any], root: Path) -> Path:
    """Unpacks, applies `files` (from -> to, in the plugin's install directory) and links
    `bin` into krew's bin directory as kubectl-<name>; returns that bin directory."""
    unpacked, install, bin_dir = root / "download", root / "store" / "caxton", root / "bin"
    for directory in (unpacked, install, bin_dir):
        directory.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    for op in platform["files"]:
        source = unpacked / op["from"]
        assert source.exists(), f"files: {op['from']} is not in the archive"
        shutil.copy2(source, install / op["to"] / source.name)
    binary = install / platform["bin"]
    assert binary.is_file() and os.access(binary, os.X_OK), "bin is not an executable file after `files`"
    assert any(p.name.lower() in ("license", "license.txt", "license.md") for p in install.iterdir())
    (bin_dir / "kubectl-caxton").symlink_to(binary)
    return bin_dir


def test_the_archive_installs_and_runs_with_plain_python(tmp_path: Path) -> None:
    build = _build()
    data = build.archive_bytes()
    assert build.archive_bytes() == data, "the archive is reproducible"
    # What the release step writes (python plugins/build.py --write-manifest): the committed
    # manifest differs from it in the sha256 at most (that is written for the released tree).
    rendered = tmp_path / "caxton.yaml"
    shutil.copy(MANIFEST, rendered)
    build.write_manifest(hashlib.sha256(data).hexdigest(), rendered)
    released = yaml.safe_load(rendered.read_text())
    assert validate(released, rendered.name) == []
    assert released["spec"]["platforms"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    for doc in (released, committed := manifest()):
        doc["spec"]["platforms"][0].pop("sha256")
    assert released == committed, "version or uri out of date: python plugins/build.py --write-manifest"
    archive = tmp_path / build.archive_name()
    archive.write_bytes(data)
    bin_dir = _install_like_krew(archive, released["spec"]["platforms"][0], tmp_path / "krew")

    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 to run the zip application without the project's virtualenv")
    # No virtualenv, no site packages of ours: only what the archive carries.
    env = {"PATH": f"{bin_dir}:{Path(python).parent}", "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    kubectl = KUBERNETES.binary("kubectl")
    command = [str(kubectl), "caxton"] if kubectl.exists() else [str(bin_dir / "kubectl-caxton")]
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and "kubectl caxton" in shown.stdout, shown.stderr
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    # As far as the first request: the Kubernetes client and YAML load from the archive.
    tried = subprocess.run([*command, "cluster", "members", "--kubeconfig", str(kubeconfig)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert tried.returncode == 2 and "cannot reach the API server https://127.0.0.1:9" in tried.stderr, tried.stderr
    assert "Traceback" not in tried.stderr


def test_the_archive_carries_each_librarys_licence() -> None:
    build = _build()
    names = build.zipapp_files()
    for distribution in build.LIBRARIES:
        assert any(n.startswith(f"licenses/{distribution}/") for n in names), distribution
    assert not any(n.startswith(("caxton_local/", "caxton_operator/", "httpx/")) for n in names)
    assert "caxton_kube/client.py" not in names  # kubectl mode uses caxton_kube.oneshot
    assert "caxton_cli/local.py" not in names
