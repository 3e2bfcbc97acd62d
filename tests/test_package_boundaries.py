"""What the shipped packages may import. The operator image and a `pip install` of the
plugin must work without the local control plane, so only the dev tooling's own front
door (`caxton_cli/local.py`) may import `caxton_local`; and the shared Kubernetes client
sits below everything else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"caxton_node": ROOT / "node", "caxton_operator": ROOT / "operator", "caxton_cli": ROOT / "cli",
           "caxton_kube": ROOT / "kube"}
# package -> the first-party packages it must not import
FORBIDDEN = {
    "caxton_node": {"caxton_local", "caxton_operator", "caxton_cli", "caxton_kube"},
    "caxton_operator": {"caxton_local", "caxton_cli"},
    "caxton_cli": {"caxton_local", "caxton_operator"},
    "caxton_kube": {"caxton_local", "caxton_operator", "caxton_cli", "caxton_node"},
}
ALLOWED = {("caxton_cli/local.py", "caxton_local")}  # `caxton local ...` is the dev tooling's front door


def imported_packages(path: Path) -> set[str]:
    """Top-level package names imported anywhere in the file (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str) -> list[str]:
    base = SHIPPED[package]
    found = []
    for path in sorted((base / package).rglob("*.py")):
        relative = path.relative_to(base).as_posix()
        for name in sorted(imported_packages(path) & FORBIDDEN[package]):
            if (relative, name) not in ALLOWED:
                found.append(f"{relative} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(SHIPPED))
def test_shipped_package_imports_only_what_it_may(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from caxton_local.kube import Kube\n    import caxton_node.pki\n")
    assert imported_packages(module) == {"os", "caxton_local", "caxton_node"}
