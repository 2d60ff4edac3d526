"""Two first setups at once (scripts/setup.sh): the second waits for the first and reuses its environment.

Marker ``setup`` (deselected by default, run with ``-m setup``): it builds two real virtual environments'
worth of pip work. To stay in about a minute it does not download torch again: the interpreter it hands to
setup.sh (``PYTHON``) makes the new environment see the current environment's packages through a ``.pth``
file, so ``pip install -r requirements.lock`` finds everything installed; every other step of setup.sh (the
lock, the completion marker, pip's own upgrade, the editable install, the import check) runs as written.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.setup


def _checkout(dest: Path) -> Path:
    """The files setup.sh reads, copied from this working tree (so an uncommitted edit is what is tested)."""
    for rel in ("scripts/setup.sh", "requirements.lock", "pyproject.toml", "README.md"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def _slow_python(tmp: Path) -> Path:
    """`python3 -m venv X`, then X sees this environment's packages, then a pause that widens the race window."""
    shared = site.getsitepackages()[0]
    wrapper = tmp / "python-for-setup"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        "set -e\n"
        f'"{shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"}" "$@"\n'
        'venv="${@: -1}"\n'
        'sp=$(echo "$venv"/lib/python3*/site-packages)\n'
        f'echo "{shared}" > "$sp/_shared_for_test.pth"\n'
        "sleep 3\n"
    )
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.timeout(600)
def test_two_first_setups_at_once_both_succeed_and_build_the_environment_once(tmp_path):
    cache = tmp_path / "cache"
    checkouts = [_checkout(tmp_path / f"clone{i}") for i in (1, 2)]
    env = {**os.environ, "HETMTL_VENV_CACHE": str(cache), "PYTHON": str(_slow_python(tmp_path))}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    procs = [
        subprocess.Popen(["bash", "scripts/setup.sh"], cwd=c, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for c in checkouts
    ]
    outs = [p.communicate(timeout=580)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out
        assert "torch " in out and "[setup] .venv ->" in out, out
    both = "\n".join(outs)
    assert both.count("[setup] creating") == 1, both  # the second reused the first's environment
    assert both.count("waiting for it") == 1, both
    venvs = list(cache.glob("venv-*/.complete"))
    assert len(venvs) == 1, venvs
    for c in checkouts:
        assert (c / ".venv").resolve() == venvs[0].parent.resolve()
        # and the environment works from either checkout
        r = subprocess.run([str(c / ".venv/bin/python"), "-c", "import torch, hetmtl"], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
