"""Loading and validating the experiment parameters in ``params/``.

Every ``params/*.yaml`` file holds distinct top-level keys; they are merged into
one dict and validated against ``params.schema.yaml`` (the one schema the CLI
and the Snakefile both use) and the methods' declarations
(:mod:`hetmtl.methods.registry`). Errors name the file, the key and the reason.

One module per role: :mod:`~hetmtl.params.load` (loading and schema, :class:`Params`),
:mod:`~hetmtl.params.grid` (the grid of runs), :mod:`~hetmtl.params.sweeps` (sweeps and
readings), :mod:`~hetmtl.params.tune` (the tuning stage's trials),
:mod:`~hetmtl.params.checks` and :mod:`~hetmtl.params.report_checks` (cross-field
checks), :mod:`~hetmtl.params.digests` (provenance digests and code paths).

This package imports no torch, so the Snakefile can use it cheaply.
"""

from __future__ import annotations

from hetmtl.params.digests import DATA_CODE, SHARED_CODE, TUNE_CODE, code_digest, code_paths, files_digest
from hetmtl.params.errors import ParamsError
from hetmtl.params.load import SCHEMA_PATH, Params, files_with_key, find_root, load_params
from hetmtl.params.tune import sample

__all__ = ["DATA_CODE", "SCHEMA_PATH", "SHARED_CODE", "TUNE_CODE", "Params", "ParamsError", "code_digest",
           "code_paths", "files_digest", "files_with_key", "find_root", "load_params", "sample"]
