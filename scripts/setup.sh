#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment and link it as .venv.
#
# The environment is about 5 GB (torch's public build), so it is shared by all
# checkouts on a machine and keyed by the hash of requirements.lock: a fresh
# clone reuses it, a changed lock file gets a new one. Only the editable
# install of this checkout is redone each time (a few seconds).
#   HETMTL_VENV_CACHE  where environments live (default ~/.cache/hetmtl)
#   PYTHON             the interpreter to build it with (default python3)
#
# Two checkouts may set up at once (two `make` on a fresh machine): building
# the shared environment is done under a lock (flock on $venv.lock), so the
# second setup waits for the first and then reuses what it built instead of
# deleting it half-way (which once broke both with "invalid command
# 'bdist_wheel'" and a missing typing_extensions).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${HETMTL_VENV_CACHE:-$HOME/.cache/hetmtl}"
hash=$(sha256sum requirements.lock | cut -c1-12)
venv="$cache/venv-$hash"
python="${PYTHON:-python3}"

mkdir -p "$cache"
exec 9>"$venv.lock"
if ! flock --nonblock 9; then
  echo "[setup] another setup is building or updating $venv: waiting for it"
  flock 9
fi
if [ ! -f "$venv/.complete" ]; then
  echo "[setup] creating $venv (one time, about 2 minutes)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements.lock
  touch "$venv/.complete"
fi
# The editable install writes into the shared environment too: still under the lock.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
flock --unlock 9
ln -sfn "$venv" .venv
"$venv/bin/python" -c "import torch, torchvision, hetmtl; print(f'[setup] .venv -> $venv: torch {torch.__version__}, torchvision {torchvision.__version__}, cuda {torch.cuda.is_available()}')"
