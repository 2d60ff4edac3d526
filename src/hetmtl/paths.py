"""Every file path the pipeline reads or writes, in one place.

The Snakefile, the CLI and the tests use these functions; ``dvc.yaml`` spells
the same patterns out (a test checks that they agree).
"""

from __future__ import annotations

from pathlib import Path


def archive_name(source: dict) -> str:
    """The file name of a source's archive in ``raw_dir``: its ``archive``; for a
    class-folder source (``path``), the archive's own name, or a folder's name
    with ``.zip`` (the fetch step packs a folder into that zip)."""
    if "archive" in source:
        return source["archive"]
    name = Path(source["path"]).name
    return name if is_archive(name) else f"{name}.zip"


ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")


def is_archive(path: str) -> bool:
    """Whether a local source's ``path`` names an archive (by its suffix) or a folder."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def raw_archive(suite: dict, source: dict) -> Path:
    return Path(suite["raw_dir"]) / archive_name(source)


def prepared_dir(suite: str, task: str) -> Path:
    return Path("data/prepared") / suite / task


def prepared_images(suite: str, task: str) -> Path:
    """Every image of the task (uint8) and its label; the split is drawn per run."""
    return prepared_dir(suite, task) / "images.pt"


def prepared_manifest(suite: str, task: str) -> Path:
    return prepared_dir(suite, task) / "manifest.json"


def run_dir(suite: str, group: str, setting: str, method: str, seed: int) -> Path:
    return Path("results") / suite / "runs" / group / setting / method / f"seed{seed}"


def receipt(suite: str, group: str, setting: str, method: str, seed: int) -> Path:
    return run_dir(suite, group, setting, method, seed) / "receipt.json"


def model_file(suite: str, group: str, setting: str, method: str, seed: int) -> Path:
    return run_dir(suite, group, setting, method, seed) / "model.pt"


def checkpoint(suite: str, group: str, setting: str, method: str, seed: int) -> Path:
    """Resume state; deliberately not a DAG output, so a failed job keeps it."""
    return Path("results") / suite / "checkpoints" / group / setting / method / f"seed{seed}.pt"


def value_text(value: float | str) -> str:
    """A swept value as text: a folder name (``{value}``: a wildcard of the Snakefile's
    patterns), a run name, a tag, a CLI argument: ``0.5``, ``1e-05``, or a name (``pcgrad``)."""
    return value if isinstance(value, str) else f"{value:g}"


def sweep_dir(suite: str, sweep: str, group: str, value: float | str, seed: int) -> Path:
    return Path("results") / suite / "sweeps" / sweep / group / value_text(value) / f"seed{seed}"


def sweep_receipt(suite: str, sweep: str, group: str, value: float | str, seed: int) -> Path:
    return sweep_dir(suite, sweep, group, value, seed) / "receipt.json"


def sweep_checkpoint(suite: str, sweep: str, group: str, value: float | str, seed: int) -> Path:
    return Path("results") / suite / "checkpoints" / "sweeps" / sweep / group / value_text(value) / f"seed{seed}.pt"


def tune_json(suite: str, group: str, setting: str, method: str) -> Path:
    """A tune cell's trials (values, mean validation accuracy) and its choice (README "Tuning")."""
    return Path("results") / suite / "tune" / group / setting / f"{method}.json"


def figure(suite: str, name: str) -> Path:
    return Path("reports") / suite / "figures" / f"{name}.png"


def plots_dir(suite: str) -> Path:
    return Path("reports") / suite / "plots"


def experiment_marker(suite: str) -> Path:
    return Path("results") / suite / "mlflow_experiment.json"


def relations_csv(suite: str, group: str) -> Path:
    return Path("results") / suite / "relations" / f"{group}.csv"


def relations_png(suite: str, group: str) -> Path:
    return Path("results") / suite / "relations" / f"{group}.png"


def relations_detail(suite: str, group: str) -> Path:
    """The estimate's details (gains per pair and seed) and the stage's MLflow record."""
    return Path("results") / suite / "relations" / f"{group}.json"


def tables_dir(suite: str) -> Path:
    return Path("reports") / suite / "tables"


def table_file(suite: str, table: str, ext: str) -> Path:
    return tables_dir(suite) / f"{table}.{ext}"


def metrics_dir(suite: str) -> Path:
    """`dvc metrics show`: one file, so one row, per comparison table."""
    return Path("reports") / suite / "metrics"


def metrics_file(suite: str, table: str) -> Path:
    return metrics_dir(suite) / f"{table}.json"


def store_lock() -> Path:
    """Held while an MLflow experiment and its parent runs are created."""
    return Path("results") / ".mlflow-create.lock"


def checkout_id() -> Path:
    """This checkout's random id (``hetmtl.checkout`` tag of its runs)."""
    return Path("results") / ".hetmtl-checkout"


def bench_file(suite: str, name: str, ext: str, tracked: bool = True) -> Path:
    """``hetmtl bench``'s table (md) and record (json) of a suite: ``name`` the
    device type it was timed on, or ``estimate`` (``--count-only``); under reports/
    (tracked by git) or, ``tracked=False``, under results/ (ignored)."""
    return Path("reports" if tracked else "results") / suite / "bench" / f"bench_{name}.{ext}"
