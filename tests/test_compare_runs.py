"""scripts/compare_runs.py reads every table of a suite it can compare and skips the others."""

from __future__ import annotations

import importlib.util

import pandas as pd

from conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_runs_compare_by_ci_and_tables_without_methods_are_skipped(tmp_path):
    for name, shift in (("a", 0.0), ("b", 0.01)):
        folder = tmp_path / name / "reports" / "demo" / "tables"
        folder.mkdir(parents=True)
        pd.DataFrame({"method": ["single_task", "mtal"], "Average/mean": [0.6 + shift, 0.7],
                      "Average/std": [0.01, 0.01], "Average/ci": [0.02, 0.04]}).to_csv(folder / "table3.csv",
                                                                                      index=False)
        pd.DataFrame({"weighting": ["equal"], "related/mean": [0.5]}).to_csv(folder / "table7_weightings.csv",
                                                                             index=False)
        pd.DataFrame({"claim": ["C1"], "effect": [0.1]}).to_csv(folder / "claims.csv", index=False)
    d = _script().distances(tmp_path / "a", tmp_path / "b", "demo")
    assert set(d.table) == {"table3"}
    row = d.set_index("method").loc["single_task"]
    assert abs(row.ratio - 0.5) < 1e-9 and d.set_index("method").loc["mtal"].ratio == 0


def test_verdicts_and_significant_differences_are_compared_row_by_row(tmp_path):
    for name, verdict, p in (("a", "supported", 0.01), ("b", "inconclusive", 0.2)):
        folder = tmp_path / name / "reports" / "demo" / "tables"
        folder.mkdir(parents=True)
        pd.DataFrame({"claim": ["C10", "C2"], "reading": ["start: common", None], "verdict": [verdict, "contradicted"],
                      "deciding": ["x", "y"], "effect": [0.1, -0.2], "p_holm": [p, 0.01]}).to_csv(
            folder / "claims.csv", index=False)
        pd.DataFrame({"method": ["single_task", "mtda", "mtal"], "Average/mean": [0.6, 0.4, 0.62],
                      "p_vs_mtal_holm": [0.5, p, None]}).to_csv(folder / "table3.csv", index=False)
    mod = _script()
    v = mod.verdicts(tmp_path / "a", tmp_path / "b", "demo")
    assert list(v.claim) == ["C2", "C10"] and list(v.agree) == [True, False]  # C2 before C10
    s = mod.significant(tmp_path / "a", tmp_path / "b", "demo").set_index("method")
    assert (s.loc["mtda", "a"], s.loc["mtda", "b"]) == ("lower", "n.s.") and s.loc["single_task", "agree"]
    md = mod.agreement_md(tmp_path / "a", tmp_path / "b", "demo", ("one", "two"), "cmd")
    assert "decided (supported or contradicted) in A: 2, in B: 1, the same verdict in both: 1" in md
    assert "significant in A: 1, in B: 0" in md
