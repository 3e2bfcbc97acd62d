"""The GitHub Actions workflows users' CI runs (.github/workflows) pass actionlint, pinned and built
from Go modules like the control plane (with shellcheck judging their `run:` scripts); every action
is pinned to a release, and kind's node images to digests, one of which kind-config.yaml uses."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_local import toolchain

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
KIND_WORKFLOW = ROOT / ".github" / "workflows" / "e2e-kind.yml"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is not installed (hack/setup.sh installs it): actionlint would not check run: scripts")
    return toolchain.build(toolchain.ACTIONLINT, log=lambda line: print(line, file=sys.stderr)) / "actionlint"


def run_actionlint(actionlint: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(actionlint), "-no-color", *map(str, files)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_workflows_pass_actionlint(actionlint: Path) -> None:
    assert KIND_WORKFLOW in WORKFLOWS
    result = run_actionlint(actionlint, *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_refuses_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    text = KIND_WORKFLOW.read_text()
    # A misspelt matrix key in an expression, and a script quoting mistake shellcheck knows.
    text = text.replace("${{ matrix.node-image }}", "${{ matrix.node_image }}", 1)
    text = text.replace('dirname "$helm_bin"', "dirname $helm_bin", 1)
    broken.write_text(text)
    result = run_actionlint(actionlint, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "node_image" in result.stdout and "SC2086" in result.stdout, result.stdout


def _uses(workflow: dict[str, Any]) -> list[str]:
    return [step["uses"] for job in workflow["jobs"].values() for step in job.get("steps", []) if "uses" in step]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_releases(path: Path) -> None:
    uses = _uses(yaml.safe_load(path.read_text()))
    assert uses
    loose = [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", u)]
    assert not loose, f"pin these to a release (owner/action@vX.Y.Z): {loose}"


def test_kind_images_are_pinned_by_digest_and_kind_config_uses_one() -> None:
    workflow = yaml.safe_load(KIND_WORKFLOW.read_text())
    matrix = workflow["jobs"]["e2e"]["strategy"]["matrix"]["include"]
    images = [entry["node-image"] for entry in matrix]
    assert len(images) >= 3
    for entry in matrix:
        pinned = rf"kindest/node:{re.escape(entry['kubernetes'])}@sha256:[0-9a-f]{{64}}"
        assert re.fullmatch(pinned, entry["node-image"]), entry
    nodes = yaml.safe_load((ROOT / "kind-config.yaml").read_text())["nodes"]
    assert {node["image"] for node in nodes} <= set(images)
