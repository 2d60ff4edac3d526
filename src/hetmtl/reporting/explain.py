"""Where a table cell comes from: ``hetmtl explain --suite S --table T --method M [--column C]``.

For one cell of a comparison table (Tables 2-5, params/grid.yaml ``tables``) it
lists every seed's value with the receipt and the MLflow run id it was read
from, and the mean the table shows, computed the way the table computes it
(the same records, :func:`hetmtl.reporting.collect.collect`).
"""

from __future__ import annotations

from pathlib import Path

from hetmtl.errors import UserError
from hetmtl.reporting.tables import AVERAGE
from hetmtl.runs import RunId


def explain(params, suite: str, root: Path, table: str, method: str, column: str = AVERAGE) -> str:
    from hetmtl.reporting.collect import collect

    if table not in params["tables"]:
        raise UserError(f"--table {table!r}: not a comparison table of params/grid.yaml "
                        f"(known: {', '.join(params['tables'])})")
    spec = params["tables"][table]
    rows = dict((m, s) for s, m in params.table_methods(spec["setting"]))
    if method not in rows:
        raise UserError(f"--method {method!r}: not a row of {table} (rows: {', '.join(rows)})")
    tasks = params.tasks_of(spec["group"])
    if column != AVERAGE and column not in tasks:
        raise UserError(f"--column {column!r}: not a column of {table} (columns: {', '.join([*tasks, AVERAGE])})")
    metric = "test_acc/mean" if column == AVERAGE else f"test_acc/{column}"
    records = collect(params, suite, root)
    sel = records[(records.group == spec["group"]) & (records.setting == rows[method]) & (records.method == method)
                  & (records.metric == metric)].sort_values("seed")
    lines = [f"{suite} {table} ({spec['group']}, {spec['setting']}), row {method} (run setting {rows[method]}), "
             f"column {column} = {metric}:"]
    for r in sel.itertuples():
        receipt = RunId(suite, r.group, r.setting, r.method, int(r.seed)).receipt
        lines.append(f"  seed {r.seed}: {100 * r.value:.2f}%  receipt {receipt.as_posix()}  MLflow run {r.run_id}")
    if len(sel):
        lines.append(f"  mean {100 * sel.value.mean():.2f}% over {len(sel)} seed(s): the table shows "
                     f"{100 * sel.value.mean():.1f}")
    return "\n".join(lines) + "\n"
