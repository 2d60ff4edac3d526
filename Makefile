# The two commands of the README, and a few helpers.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c  # a failed command piped into grep fails its target
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# The environment is shared between checkouts (scripts/setup.sh); this makes
# every command use this checkout's code whichever checkout installed last.
export PYTHONPATH := $(CURDIR)/src
CORES ?= 2

.PHONY: setup demo test test-slow tiny readme-tables clean-results mutation

setup:
	@bash scripts/setup.sh

demo: setup  ## set up, then reproduce the demo suite offline: tables, figures, HTML report
	snakemake --profile workflow/profiles/default --cores $(CORES) --config suite=demo
	snakemake --profile workflow/profiles/default --config suite=demo --report reports/demo/report.html 2>&1 | grep -v "Missing metadata"

readme-tables:  ## embed reports/demo/tables/*.md into docs/results.md (between the markers)
	python scripts/readme_tables.py demo

tiny: setup
	snakemake --profile workflow/profiles/default --cores $(CORES) --config suite=tiny

test: setup  ## the test suite (CI runs exactly this, then test-slow)
	python -m pytest -q --durations=20  # the slowest 20: where the time goes (issue 33)

test-slow: setup  ## the slow tier: end-to-end runs beyond the tiny suite's Snakemake and DVC runs; two setups at once
	python -m pytest -q -m "slow or setup" --durations=20

# MODULES: paths under src/ (default: every module of tests/mutation/modules.yaml not pending)
mutation: setup  ## the mutation tier: mutmut per module, then scores vs tests/mutation/baseline.json and triage
	python scripts/mutation.py run $(MODULES)

clean-results:  ## remove trained runs and reports (keeps data and mlflow.db)
	rm -rf results reports/*/tables reports/*/metrics reports/*/figures reports/*/plots
