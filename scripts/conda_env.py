"""Write workflow/envs/hetmtl.yaml, the conda environment the rules name, from requirements.lock.

    python scripts/conda_env.py          # rewrite it after a change of requirements.lock
    python scripts/conda_env.py --check  # exit 1 if it differs from the lock (tests/test_workflow.py)

The environment holds the lock's exact pins (Snakemake hashes the file's
content, so a changed pin makes a new environment) and this checkout, installed
from `../..`: conda runs pip from the folder of the copy Snakemake makes,
`.snakemake/conda/`, two levels under the checkout (Snakemake's default
--conda-prefix).
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK, ENV = ROOT / "requirements.lock", ROOT / "workflow" / "envs" / "hetmtl.yaml"


def render() -> str:
    pins = [line.strip() for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    lines = ["# The software of every rule, for `snakemake --use-conda` (written by scripts/conda_env.py",
             "# from requirements.lock: do not edit by hand). Without --use-conda the rules run in",
             "# the environment of scripts/setup.sh, which installs the same lock.",
             "channels:", "  - conda-forge", "dependencies:", "  - python=3.11", "  - pip", "  - pip:"]
    lines += [f"      - {p}" for p in pins] + ["      - -e ../..", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        if not ENV.exists() or ENV.read_text() != text:
            sys.exit(f"error: {ENV.relative_to(ROOT)} differs from requirements.lock: "
                     "run `python scripts/conda_env.py`")
    else:
        ENV.write_text(text)
