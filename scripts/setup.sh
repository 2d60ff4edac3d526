#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment and link it as .venv.
#
# The environment is about 5 GB (torch's public build), so it is shared by all
# checkouts on a machine and keyed by the hash of requirements.lock: a fresh
# clone reuses it, a changed lock file gets a new one. Only the editable
# install of this checkout is redone each time (a few seconds).
#   HETMTL_VENV_CACHE  where environments live (default ~/.cache/hetmtl)
#   PYTHON             the interpreter to build it with (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${HETMTL_VENV_CACHE:-$HOME/.cache/hetmtl}"
hash=$(sha256sum requirements.lock | cut -c1-12)
venv="$cache/venv-$hash"
python="${PYTHON:-python3}"

if [ ! -f "$venv/.complete" ]; then
  echo "[setup] creating $venv (one time, about 2 minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements.lock
  touch "$venv/.complete"
fi
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
ln -sfn "$venv" .venv
"$venv/bin/python" -c "import torch, torchvision, hetmtl; print(f'[setup] .venv -> $venv: torch {torch.__version__}, torchvision {torchvision.__version__}, cuda {torch.cuda.is_available()}')"
