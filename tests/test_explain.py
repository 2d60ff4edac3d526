"""hetmtl explain: a table cell traced to its seeds' values, receipts and MLflow runs; the CSVs carry the runs."""

from __future__ import annotations

import pandas as pd
import pytest

import hetmtl.reporting.collect as collect
from hetmtl.errors import UserError
from hetmtl.reporting.explain import explain
from hetmtl.reporting.tables import summarise, to_csv


def _records(params):
    spec = params["tables"]["table2"]
    rows = []
    for setting, method in params.table_methods(spec["setting"]):
        for seed, acc in enumerate((0.5, 0.6, 0.7)):
            for metric, value in (("test_acc/mean", acc), ("test_acc/HD", acc + 0.1)):
                rows.append({"suite": "demo", "group": spec["group"], "setting": setting, "method": method,
                             "seed": seed, "run_id": f"{method[:4]}{seed}", "metric": metric, "value": value})
    return pd.DataFrame(rows)


def test_a_cell_lists_each_seeds_value_receipt_and_run(params, monkeypatch, tmp_path):
    monkeypatch.setattr(collect, "collect", lambda *a: _records(params))
    text = explain(params, "demo", tmp_path, "table2", "single_task")
    assert "row single_task (run setting shared)" in text
    assert "seed 1: 60.00%  receipt results/demo/runs/related/shared/single_task/seed1/receipt.json  MLflow run sing1" \
        in text
    assert "mean 60.00% over 3 seed(s): the table shows 60.0" in text
    assert "seed 2: 80.00%" in explain(params, "demo", tmp_path, "table2", "single_task", "HD")
    with pytest.raises(UserError, match="not a row of table2"):
        explain(params, "demo", tmp_path, "table2", "mtal")  # table2 is the prior setting's: mtal_prior
    with pytest.raises(UserError, match="not a column"):
        explain(params, "demo", tmp_path, "table2", "single_task", "Amazon")


def test_the_csv_of_a_table_names_each_rows_runs_by_seed(params):
    spec = params["tables"]["table2"]
    t = summarise(_records(params).assign(metric=lambda d: d.metric.replace("test_acc/HD", "test_acc/a")),
                  spec["group"], params.table_methods(spec["setting"]), ["a"], params["report"]["display"])
    csv = pd.read_csv(__import__("io").StringIO(to_csv(t)), index_col="method")
    assert csv.loc["single_task", "runs"] == "seed0:sing0 seed1:sing1 seed2:sing2"
