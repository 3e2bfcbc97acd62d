"""The node and operator images, built here from images/Containerfile by buildah on the local
debootstrap base (cached after the first build), judged by what is in them: the user 65532, the
OCI labels, the version stamped into the node, the entrypoints, and no local control plane and no
pip in either. Commands run inside the images with `buildah run` (chroot isolation, as the
image's user)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from caxton_local import imagebuild

NODE, OPERATOR = "localhost/caxton-test/caxton-node:1.2.0", "localhost/caxton-test/caxton-operator:0.1.0"


@pytest.fixture(scope="module")
def images() -> dict[str, imagebuild.Built]:
    base = imagebuild.base_image(log=print)
    built = {"node": imagebuild.build("node", "1.2.0", NODE, base=base),
             "operator": imagebuild.build("operator", "0.1.0", OPERATOR, base=base)}
    for target, result in built.items():
        print(f"built the {target} image in {result.seconds:.1f}s")
    return built


def config(tag: str) -> dict[str, Any]:
    inspected: dict[str, Any] = json.loads(imagebuild.buildah("inspect", "--type", "image", tag, what="inspect"))
    return dict(inspected["OCIv1"]["config"])


@pytest.fixture
def container(request: pytest.FixtureRequest) -> Iterator[str]:
    name = imagebuild.buildah("from", request.param, what="a working container").strip()
    try:
        yield name
    finally:
        imagebuild.buildah("rm", name, what="removing the working container")


def run_in(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", "--storage-driver", "vfs", "run", "--isolation", "chroot", container, "--",
                           *command], capture_output=True, text=True, timeout=300)


def test_both_images_are_labelled_and_run_as_65532(images: dict[str, imagebuild.Built]) -> None:
    for tag, version, title in ((NODE, "1.2.0", "caxton-node"), (OPERATOR, "0.1.0", "caxton-operator")):
        cfg = config(tag)
        assert cfg["User"] == "65532:65532", cfg
        labels = cfg["Labels"]
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.title"] == title
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert config(NODE)["Entrypoint"] == ["caxton"] and "CAXTON_VERSION=1.2.0" in config(NODE)["Env"]
    assert config(OPERATOR)["Entrypoint"] == ["caxton-operator"]


@pytest.mark.parametrize("container", [NODE], indirect=True)
def test_the_node_image_runs_the_node_as_65532_with_its_version(images: dict[str, imagebuild.Built],
                                                                 container: str) -> None:
    ran = run_in(container, "python3", "-c", "import os, caxton_node.server as s; "
                 "print(os.getuid(), os.getgid(), s.node_version())")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["65532", "65532", "1.2.0"]  # the version stamped at build time
    help_text = run_in(container, "caxton", "server", "start", "--help")
    assert help_text.returncode == 0 and "--config" in help_text.stdout, help_text.stderr


@pytest.mark.parametrize("container", [NODE, OPERATOR], indirect=True)
def test_no_local_control_plane_and_no_pip_in_the_images(images: dict[str, imagebuild.Built], container: str) -> None:
    for module in ("caxton_local", "pip"):
        ran = run_in(container, "python3", "-c", f"import {module}")
        assert ran.returncode != 0 and "ModuleNotFoundError" in ran.stderr, (module, ran.stdout, ran.stderr)
    imported = run_in(container, "python3", "-c", "import caxton_operator.main, caxton_node.server, caxton_kube")
    assert imported.returncode == 0, imported.stderr
