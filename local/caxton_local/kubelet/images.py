"""The image table: how an image reference becomes a local command.

There is no registry or container runtime here, so an image names a program
installed on this machine. Unknown images fail the way a real kubelet's pull
does (ErrImagePull, then ImagePullBackOff). Extra entries come from
`<state-dir>/images.yaml`:

    images:
      - repository: registry.example/my-app
        entrypoint: [my-app, serve]
        path: [/opt/my-app/bin]
        env: {APP_VERSION: "{tag}"}
      - repository: registry.example/my-app    # one tag of it runs something else
        tag: 2.0.0-rc.1
        entrypoint: [my-app-rc]
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PYTHON_BIN = str(Path(sys.executable).parent)


class ImagePullError(RuntimeError):
    """The image is not in the table: reported as ErrImagePull with this message."""


@dataclass(frozen=True)
class ImageRule:
    repository: str
    entrypoint: list[str]
    path: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    tag: str = ""  # empty: every tag of the repository

    def matches(self, repository: str, tag: str) -> bool:
        return self.repository == repository and self.tag in ("", tag)


@dataclass(frozen=True)
class ResolvedImage:
    reference: str
    repository: str
    tag: str
    entrypoint: list[str]
    path: list[str]
    env: dict[str, str]

    @property
    def image_id(self) -> str:
        return f"process://{self.repository}:{self.tag}"


BUILTIN = (
    # The Caxton node: the image tag is the version the node reports.
    ImageRule("ghcr.io/caxton/caxton-node", ["caxton"], [PYTHON_BIN], {"CAXTON_VERSION": "{tag}"}),
    ImageRule("ghcr.io/caxton/caxton-operator", ["caxton-operator"], [PYTHON_BIN]),
    ImageRule("python", ["python3"], [PYTHON_BIN]),
    ImageRule("busybox", ["sh"], ["/usr/bin", "/bin"]),
)


def split_reference(reference: str) -> tuple[str, str]:
    """'docker.io/library/python:3.11' -> ('python', '3.11'); digests count as tags."""
    name, tag = reference, "latest"
    if "@" in name:
        name, tag = name.split("@", 1)
    else:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return name, tag


class ImageTable:
    def __init__(self, extra_file: Path | None = None) -> None:
        self._extra_file = extra_file

    def rules(self) -> list[ImageRule]:
        rules = list(BUILTIN)
        if self._extra_file and self._extra_file.exists():
            raw = yaml.safe_load(self._extra_file.read_text()) or {}
            rules = [ImageRule(**entry) for entry in raw.get("images", [])] + rules
        return rules

    def resolve(self, reference: str) -> ResolvedImage:
        repository, tag = split_reference(reference)
        for rule in self.rules():
            if rule.matches(repository, tag):
                return ResolvedImage(
                    reference=reference, repository=repository, tag=tag,
                    entrypoint=list(rule.entrypoint), path=list(rule.path),
                    env={k: v.replace("{tag}", tag) for k, v in rule.env.items()},
                )
        where = f" or {self._extra_file}" if self._extra_file else ""
        raise ImagePullError(
            f'failed to pull image "{reference}": repository {repository} is not in the '
            f"process kubelet's image table (built-ins{where})"
        )


def which(command: str, path: list[str]) -> str | None:
    if "/" in command:
        return command if os.access(command, os.X_OK) else None
    return shutil.which(command, path=os.pathsep.join(path))
