"""The MLflow experiment's parent runs (hetmtl init-tracking)."""

from __future__ import annotations


def test_init_tracking_again_reuses_the_parent_runs(tmp_path, monkeypatch):
    """Run again (a group added, the marker lost), it writes the same run ids for
    the same parents: nothing downstream of the marker looks changed."""
    from hetmtl.tracking.mlflow_store import client, init_experiment

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    first = init_experiment(tmp_path, "tiny", [("related", "shared"), ("related", "prior")])
    again = init_experiment(tmp_path, "tiny", [("related", "shared"), ("related", "prior")])
    assert again == first
    more = init_experiment(tmp_path, "tiny", [("related", "shared"), ("related", "prior"), ("unrelated", "prior")])
    assert {k: more["parents"][k] for k in first["parents"]} == first["parents"]
    assert more["parents"]["unrelated/prior"] not in first["parents"].values()
    runs = client(tmp_path).search_runs([first["experiment_id"]], "tags.`hetmtl.kind` = 'group'")
    assert len(runs) == 3
