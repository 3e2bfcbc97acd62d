"""Builds the krew archive of `kubectl caxton` and, with --write-manifest, points
plugins/caxton.yaml at it (version, uri, sha256).

    python plugins/build.py [--out dist] [--write-manifest]

The archive holds `kubectl-caxton`, a Python zip application (the plugin's
kubectl-mode code, its Kubernetes client and PyYAML's pure-Python part, with its
licence) that runs on any python3 >= 3.11, and LICENSE. The same tree
and the same library versions give the same bytes, so the manifest's sha256 can be
checked by rebuilding.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import io
import re
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "plugins" / "caxton.yaml"
RELEASES = "https://github.com/caxton/caxton-k8s/releases/download"
# The plugin's code in the zipapp: kubectl mode only (no node server, PKI or local control plane).
OWN = {
    "caxton_cli": ROOT / "cli" / "caxton_cli",
    "caxton_kube": ROOT / "kube" / "caxton_kube",
    "caxton_node": ROOT / "node" / "caxton_node",
}
OWN_FILES = {"caxton_node": {"__init__.py", "units.py"}}
DIRECT_MODE_ONLY = {"caxton_cli": {"local.py", "server.py", "security.py"},
                    "caxton_kube": {"client.py"}}  # the httpx client of the long-running processes
# distribution -> (version the manifest's sha256 was built with, top-level modules it provides).
# kubectl mode talks to the API server with http.client (caxton_kube.oneshot): YAML is all it needs.
LIBRARIES = {
    "PyYAML": ("6.0.3", ["yaml"]),
}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
MAIN = "from caxton_cli.main import kubectl_main\n\nkubectl_main()\n"


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def pinned_versions_installed() -> list[str]:
    """The libraries whose installed version differs from the one the manifest was built with."""
    return [f"{name} {importlib.metadata.version(name)} (manifest: {pinned})"
            for name, (pinned, _) in LIBRARIES.items() if importlib.metadata.version(name) != pinned]


def _library_files(distribution: str, modules: list[str]) -> dict[str, bytes]:
    dist = importlib.metadata.distribution(distribution)
    files: dict[str, bytes] = {}
    for entry in dist.files or []:
        path = Path(str(entry))
        top = path.parts[0]
        wanted_module = top in modules or top in {f"{m}.py" for m in modules}
        if (wanted_module and path.suffix == ".py") or (wanted_module and path.name == "cacert.pem"):
            files[path.as_posix()] = Path(str(dist.locate_file(entry))).read_bytes()
        elif top.endswith(".dist-info") and re.match(r"(?i)(licen[cs]e|copying|notice)", path.name):
            files[f"licenses/{distribution}/{path.name}"] = Path(str(dist.locate_file(entry))).read_bytes()
    return files


def zipapp_files() -> dict[str, bytes]:
    files = {"__main__.py": MAIN.encode()}
    for package, directory in OWN.items():
        for path in sorted(directory.rglob("*.py")):
            relative = path.relative_to(directory).as_posix()
            if relative in DIRECT_MODE_ONLY.get(package, set()):
                continue
            if package in OWN_FILES and relative not in OWN_FILES[package]:
                continue
            files[f"{package}/{relative}"] = path.read_bytes()
    for distribution, (_, modules) in LIBRARIES.items():
        files.update(_library_files(distribution, modules))
    return files


def zipapp_bytes() -> bytes:
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(zipapp_files().items()):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def archive_bytes() -> bytes:
    """A tar.gz with no timestamps, owners or ordering that differ between builds."""
    members = {"kubectl-caxton": (zipapp_bytes(), 0o755), "LICENSE": ((ROOT / "LICENSE").read_bytes(), 0o644)}
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (data, mode) in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar_buffer.getvalue())
    return out.getvalue()


def archive_name() -> str:
    return f"kubectl-caxton-v{version()}.tar.gz"


def write_manifest(sha256: str, manifest: Path = MANIFEST) -> None:
    """Points the manifest at this build: version, uri and sha256, nothing else touched."""
    text = manifest.read_text()
    text = re.sub(r"(?m)^(  version: ).*$", rf'\g<1>"v{version()}"', text)
    text = re.sub(r"(?m)^(    uri: ).*$", rf"\g<1>{RELEASES}/v{version()}/{archive_name()}", text)
    text = re.sub(r"(?m)^(    sha256: ).*$", rf'\g<1>"{sha256}"', text)
    manifest.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--write-manifest", action="store_true", help="update plugins/caxton.yaml for this build")
    args = parser.parse_args()
    differ = pinned_versions_installed()
    if differ and args.write_manifest:
        sys.exit("installed libraries differ from LIBRARIES in plugins/build.py; update the pins first: "
                 + ", ".join(differ))
    data = archive_bytes()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / archive_name()
    target.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    if args.write_manifest:
        write_manifest(sha256)
    print(f"{target} {sha256}")


if __name__ == "__main__":
    main()
