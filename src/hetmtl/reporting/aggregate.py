"""Write every table of a suite (markdown, CSV, LaTeX) and the DVC metrics file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hetmtl import paths
from hetmtl.reporting.collect import collect
from hetmtl.reporting.tables import summarise, to_csv, to_latex, to_markdown

STANDIN_NOTE = ("Data: generated stand-in archives (SPEC section 2), NOT the paper's data; "
                "these numbers say nothing about the real data sets.")


def caption(params, suite: str, spec: dict) -> str:
    s = params.suite(suite)
    group = params["groups"][spec["group"]]
    parts = [
        f"{spec['paper']} (group {group['paper_group']}, {spec['group']} tasks; setting {spec['setting']}).",
        f"Test accuracy (%), mean ± std over {len(s['seeds'])} seed(s); best mean per column in bold; "
        "(shared): a method with no use for the task-relationship prior, run once for both settings.",
        f"Suite {suite}: {s['backbone']}, {s['image_size']}x{s['image_size']}, {s['epochs']} epochs, "
        f"batch {s['batch_size']}, SGD lr {params['training']['lr']}, momentum {params['training']['momentum']}, "
        f"L2 lambda {params['training']['l2_lambda']}.",
    ]
    if s["data"] == "standin":
        parts.append(STANDIN_NOTE)
    return " ".join(parts)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def aggregate(params, suite: str, root: Path) -> dict:
    records = collect(params, suite, root)
    metrics = {}
    for name, spec in params["tables"].items():
        tasks = params.tasks_of(spec["group"])
        table = summarise(records, spec["group"], params.table_methods(spec["setting"]), tasks)
        cap = caption(params, suite, spec)
        _write(root / paths.table_file(suite, name, "md"), to_markdown(table, cap))
        _write(root / paths.table_file(suite, name, "tex"), to_latex(table, cap))
        _write(root / paths.table_file(suite, name, "csv"), to_csv(table))
        metrics[name] = {m: {col: round(float(table.loc[m, (col, "mean")]), 6)
                             for col in table.columns.get_level_values(0).unique()
                             if table.loc[m, (col, "n")] > 0}
                         for m in table.index}
    _write(root / paths.metrics_file(suite), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
