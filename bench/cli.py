"""Plugin start-up benchmark: how long `kubectl caxton` takes from exec to exit.

    python -m bench.cli [--runs 10] [--kubectl PATH] [--kubeconfig FILE -n NS --cluster NAME] [--json out.json]

Every run is a new process (the way a user types the command). It measures `--help`
through the `kubectl-caxton` script and, with --kubectl, through kubectl's plugin
discovery; with a kubeconfig and a CaxtonCluster, also `cluster members` against that
live cluster (API server, token Secret, pod list, pod proxy). The target is 300 ms at
the median; the interpreter's own start is reported beside it for scale, and each
command's CPU time (user + system), which a busy shared machine inflates far less
than the wall clock.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Targets, report

TARGETS: Targets = {
    "help_p50_ms": ("<=", 300.0),
    "help_via_kubectl_p50_ms": ("<=", 300.0),
    "members_p50_ms": ("<=", 300.0),
    "members_via_kubectl_p50_ms": ("<=", 300.0),
}


def timed(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Milliseconds from exec to exit of `argv`, and the CPU milliseconds it used (user +
    system, which a busy machine does not inflate as it does the wall clock), `runs` times;
    a failing run is an error."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        wall.append((time.perf_counter() - started) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return wall, cpu


def summarize(figures: dict[str, float], name: str, measured: tuple[list[float], list[float]]) -> None:
    wall, cpu = sorted(measured[0]), measured[1]
    figures[f"{name}_p50_ms"] = statistics.median(wall)
    figures[f"{name}_p95_ms"] = wall[min(len(wall) - 1, round(0.95 * (len(wall) - 1)))]
    figures[f"{name}_cpu_p50_ms"] = statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--kubectl", help="kubectl binary, to measure through its plugin discovery "
                        "(default: kubectl on PATH, if any)")
    parser.add_argument("--kubeconfig", help="a live cluster: also measure `cluster members`")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("--cluster")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    scripts = Path(sys.executable).parent
    plugin = str(scripts / "kubectl-caxton")
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}
    kubectl = args.kubectl or shutil.which("kubectl", path=env["PATH"])
    figures: dict[str, float] = {}
    timed([plugin, "--help"], 1, env)  # the first run fills the page cache; not counted
    summarize(figures, "python_start", timed([sys.executable, "-c", "pass"], args.runs, env))
    summarize(figures, "help", timed([plugin, "--help"], args.runs, env))
    if kubectl:
        summarize(figures, "help_via_kubectl", timed([kubectl, "caxton", "--help"], args.runs, env))
    if args.kubeconfig:
        target = ["--kubeconfig", args.kubeconfig]
        target += ["-n", args.namespace] if args.namespace else []
        target += ["--cluster", args.cluster] if args.cluster else []
        summarize(figures, "members", timed([plugin, "cluster", "members", *target], args.runs, env))
        if kubectl:
            summarize(figures, "members_via_kubectl",
                      timed([kubectl, "caxton", "cluster", "members", *target], args.runs, env))
    report(figures, TARGETS, args.json)


if __name__ == "__main__":
    main()
