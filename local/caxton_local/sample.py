"""The sample workload `caxton local up --sample` runs, so a newcomer sees pods really run."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from caxton_local.controlplane import ControlPlane, ControlPlaneError

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-statefulset.yaml"


def apply_sample(plane: ControlPlane, *, log: Callable[[str], None]) -> None:
    kubectl = [str(plane.layout.bin / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
    log(f"applying {SAMPLE.name}")
    for argv in (
        [*kubectl, "apply", "-f", str(SAMPLE)],
        [*kubectl, "rollout", "status", "statefulset/hello", "--timeout=180s"],
    ):
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise ControlPlaneError(f"{' '.join(argv[2:])} failed: {result.stderr.strip()}")
        log(result.stdout.strip())
