"""Builds the node and operator images on this machine from images/Containerfile, the file users
build with Docker: buildah with vfs storage and chroot isolation (no daemon, no container runtime).

No registry can be reached for the Containerfile's default base (python:3.11-slim), so the base
is made here: debootstrap of Debian bookworm (minbase) plus Python from apt, imported as
`localhost/caxton-base:<key>`. The root filesystem and the image are kept (keyed by suite and
packages), and buildah's layer cache keeps the dependency layer, so a warm build only redoes the
layers whose inputs changed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from caxton_local.toolchain import cache_root

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "images" / "Containerfile"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
TARGETS = ("node", "operator")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class ImageBuildError(RuntimeError):
    """An image cannot be built; the message says what is missing or what failed."""


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float


def _run(args: list[str], *, what: str, timeout: float = 1800) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ImageBuildError(f"{what} failed ({' '.join(args[:4])} ...):\n{(result.stdout + result.stderr)[-4000:]}")
    return result.stdout


def buildah(*args: str, what: str, timeout: float = 1800) -> str:
    if not shutil.which("buildah"):
        raise ImageBuildError("buildah is not installed (apt-get install buildah; hack/setup.sh does)")
    return _run(["buildah", "--storage-driver", "vfs", *args], what=what, timeout=timeout)


def image_exists(tag: str) -> bool:
    return subprocess.run(["buildah", "--storage-driver", "vfs", "inspect", "--type", "image", tag],
                          capture_output=True, timeout=120).returncode == 0


def base_key() -> str:
    return hashlib.sha256(" ".join((SUITE, MIRROR, *PACKAGES)).encode()).hexdigest()[:12]


def base_image(*, log: Callable[[str], None] = print) -> str:
    """The local base image (Debian bookworm with Python), made once and kept."""
    tag = f"localhost/caxton-base:{SUITE}-{base_key()}"
    if image_exists(tag):
        return tag
    if not shutil.which("debootstrap"):
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap; hack/setup.sh does)")
    work = cache_root() / "images" / f"base-{base_key()}"
    rootfs = work / "rootfs"
    if not (work / ".rootfs-done").exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log(f"making the base image: debootstrap {SUITE} minbase + {', '.join(PACKAGES)} (once; minutes)")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
             what="debootstrap")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        (work / ".rootfs-done").touch()
    # The base is this machine's: it trusts what the machine trusts (a TLS-intercepting proxy's CA
    # included), so pip in the build stage reaches PyPI as the host's pip does.
    shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    _run(["tar", "-C", str(rootfs), "-cf", str(work / "rootfs.tar"), "."], what="packing the base root filesystem")
    (work / "Containerfile").write_text(
        'FROM scratch\nADD rootfs.tar /\nENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt\nCMD ["python3"]\n')
    buildah("bud", "--isolation", "chroot", "-t", tag, str(work), what="importing the base image")
    (work / "rootfs.tar").unlink()
    return tag


def build(target: str, version: str, tag: str, *, base: str, revision: str = "unknown") -> Built:
    """One target of images/Containerfile, tagged `tag`, with buildah's layer cache."""
    if target not in TARGETS:
        raise ImageBuildError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")
    started = time.monotonic()
    buildah("bud", "--isolation", "chroot", "--layers", "-f", str(CONTAINERFILE), "--target", target,
            "--build-arg", f"BASE={base}", "--build-arg", f"VERSION={version}", "--build-arg", f"REVISION={revision}",
            "-t", tag, str(ROOT), what=f"building {tag}")
    return Built(tag, time.monotonic() - started)
