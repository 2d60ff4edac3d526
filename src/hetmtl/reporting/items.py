"""The report's items: the paper's figures and the formats of tables and figures.

Light (no pandas, no matplotlib): the Snakefile imports it. Kept out of
hetmtl/paths.py, whose digest is part of every training job's (an edit here
must not make the trained runs stale).
"""

from __future__ import annotations

from pathlib import Path

from hetmtl import paths

# The paper's figures in its order; the names sort in that order (the report lists items by name).
FIGURES = ("fig08_overall", "fig09_threshold_sweep", "fig10_activations_conv1", "fig11_activations_conv2",
           "fig12_mtal_loss")
FIGURE_FORMATS = ("png", "pdf")  # PNG for the reports, PDF for papers
TABLE_FORMATS = ("md", "tex", "csv", "html")  # md: the README; html: `snakemake --report`


def figure_file(suite: str, name: str, ext: str = "png") -> Path:
    return paths.figure(suite, name).with_suffix(f".{ext}")
