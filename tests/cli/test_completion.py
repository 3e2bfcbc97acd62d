"""Shell completion generated from the command tree: the bash script, sourced in a real
bash, completes commands, flags and choices; kubectl's own plugin completion
(`kubectl __complete caxton ...`) finds `kubectl_complete-caxton` and gets the same."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from caxton_local.toolchain import KUBERNETES


def script(shell: str) -> str:
    result = subprocess.run([str(Path(sys.executable).parent / "kubectl-caxton"), "completion", shell],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def bash_complete(line: str) -> list[str]:
    """What bash offers for `line` (the cursor at its end), through the generated function."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    program = f"""
source /dev/stdin <<'CAXTON_COMPLETION'
{script("bash")}
CAXTON_COMPLETION
COMP_WORDS=({" ".join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
fn=$(complete -p kubectl-caxton | awk '{{print $3}}')
$fn
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return sorted(w for w in result.stdout.splitlines() if w)


@pytest.mark.parametrize(("line", "expected"), [
    ("kubectl-caxton clu", ["cluster"]),
    ("kubectl-caxton cluster st", ["start", "status", "stop"]),
    ("kubectl-caxton -n prod --cluster demo cluster m", ["members"]),
    ("kubectl-caxton cluster members -o ", ["json", "table", "yaml"]),
    ("kubectl-caxton cluster members --wa", ["--watch"]),
    ("kubectl-caxton agents suspend --priority ", ["high", "low", "normal"]),
    ("kubectl-caxton completion ", ["bash", "zsh"]),
])
def test_bash_completes_commands_flags_and_choices(line: str, expected: list[str]) -> None:
    assert bash_complete(line) == expected


@pytest.mark.parametrize(("line", "expected"), [
    ("kubectl-caxton -n prod cluster members -o ", ["json", "table", "yaml"]),
    ("kubectl-caxton --cluster demo queue ", ["drain", "stats"]),
])
def test_zsh_completion_function_offers_the_same(line: str, expected: list[str]) -> None:
    """The zsh function run by a real zsh; compadd (which only works inside the completion
    system) is replaced by a function that prints what it was given."""
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    program = f"""compdef() {{ : }}
source /dev/stdin <<'CAXTON_COMPLETION'
{script("zsh")}
CAXTON_COMPLETION
compadd() {{ [[ $1 == -- ]] && shift; print -l -- "$@" }}
words=({" ".join(shlex.quote(w) for w in words)})
CURRENT={len(words)}
_caxton_complete_kubectl_caxton
"""
    result = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(w for w in result.stdout.splitlines() if w) == expected


def test_zsh_autoloads_the_script_from_fpath(tmp_path: Path) -> None:
    """Installed as the help says (a file _kubectl-caxton on $fpath), compinit finds it and
    the first <TAB> already completes."""
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed (apt-get install zsh)")
    (tmp_path / "_kubectl-caxton").write_text(script("zsh"))
    program = f"""fpath=({tmp_path} $fpath)
autoload -U compinit && compinit -u -d {tmp_path}/.zcompdump
print -r -- "registered: ${{_comps[kubectl-caxton]}}"
compadd() {{ [[ $1 == -- ]] && shift; print -l -- "$@" }}
words=(kubectl-caxton cluster members -o "")
CURRENT=5
_kubectl-caxton
"""
    result = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["registered: _kubectl-caxton", "table", "json", "yaml"]


def test_kubectl_completes_the_plugin_through_kubectl_complete_caxton() -> None:
    kubectl = KUBERNETES.binary("kubectl")
    if not kubectl.exists():
        pytest.skip("the pinned kubectl is not built (hack/setup.sh)")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run([str(kubectl), "__complete", "caxton", "cluster", "m"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.stdout.splitlines() == ["members", ":4"], result.stderr
