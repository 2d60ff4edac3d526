"""The report's catalogue: every kind of table and every figure, listed once.

Each entry names its builder, its caption (the one `snakemake --report` shows),
its formats and what it reads; aggregation, the CLI (``hetmtl table`` /
``hetmtl figure``), the Snakefile's rules (report.smk) and dvc.yaml's report
stage all read it. Adding a table or a figure: an entry here and its builder.

A builder is named by its dotted path and imported only when called: this
module imports no pandas, matplotlib or torch (the Snakefile imports it on
every invocation). It is kept out of hetmtl/paths.py, whose digest is part of
every training job's (an edit here must not make the trained runs stale).

Builders are called as ``builder(params, suite, root, name, records)`` and
return the files they wrote. An entry with ``from_params`` is a kind of table,
one item per key of that params section (the comparison tables of
params/grid.yaml ``tables``); its caption is filled from the key's mapping.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from hetmtl import paths
from hetmtl.errors import UserError

TABLE_FORMATS = ("md", "tex", "csv", "html")  # md: the README; html: `snakemake --report`
FIGURE_FORMATS = ("png", "pdf")  # PNG for the reports, PDF for papers
READS = {  # what an entry may read, beyond params/
    # every item's job first checks that all the suite's receipts are current (collect.check_current)
    "receipts": "the receipts of the suite's training and sweep runs",
    "models": "the model.pt of the runs params/report.yaml `showcase` names",
    "relations": "R of each group from its relations stage (the groups a prior-setting run reads)",
}


@dataclass(frozen=True)
class Entry:
    kind: str  # "table" or "figure"
    name: str  # the item's name (files, CLI, rules); for a from_params kind: the kind's name
    builder: str  # "module:function"
    caption: str
    reads: tuple[str, ...] = ("receipts",)
    from_params: str | None = None  # a params section: one item per key of it
    # the params sections the item reads beyond the grid: a rerun trigger of its job
    # (report.smk) and params of dvc.yaml's report stage
    sections: tuple[str, ...] = ("report",)

    @property
    def formats(self) -> tuple[str, ...]:
        return TABLE_FORMATS if self.kind == "table" else FIGURE_FORMATS

    def build(self, params, suite: str, root: Path, name: str, records) -> list[Path]:
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(params, suite, root, name, records)


_AGG = "hetmtl.reporting.aggregate"
_SHARED = ("(when none is shared: the best-matching pairs, marked NOT shared, as the title says; each row shows "
           "only its own tasks' panels, so no panel is blank; a layer where no two tasks have kernels of one shape "
           "gets one panel saying so).")

# In the paper's order; the figure names sort in that order (the report lists items by name).
CATALOGUE: tuple[Entry, ...] = (
    Entry("table", "comparison", f"{_AGG}:comparison_table", from_params="tables",
          caption="Reproduces the paper's {paper}: {group} tasks, setting {setting}."),
    Entry("table", "table6", f"{_AGG}:sharing_table_files",
          caption="Reproduces the paper's Table 6: the kernel sharing ratio per conv layer of the methods "
                  "params/report.yaml `sharing` names."),
    Entry("table", "table6_pairs", f"{_AGG}:table6_pairs", reads=("receipts", "relations"),
          sections=("report", "relations"),
          caption="Table 6 per task pair (ours): each pair's shared fraction beyond the first conv layer, per MTAL "
                  "reading, beside its R."),
    Entry("table", "table7_weightings", f"{_AGG}:table7_weightings",
          caption="Table 7 (ours): every weighting of params/weightings.yaml (loss weightings and TorchJD's "
                  "gradient aggregators) on hard sharing and MTAL, both groups: test accuracy and step time "
                  "relative to equal weighting."),
    Entry("table", "claims", "hetmtl.reporting.claims:claims_table", sections=("report", "claims", "relations"),
          reads=("receipts", "relations"),
          caption="The paper's claims (section 4, params/claims.yaml), each with its verdict on this suite's runs: "
                  "supported, contradicted or inconclusive at this number of seeds (the rule is in the table's "
                  "caption)."),
    Entry("table", "claims_details", "hetmtl.reporting.claims:claims_table",
          sections=("report", "claims", "relations"), reads=("receipts", "relations"),
          caption="The claims' details: each claim's sentence, what it rests on, its runs and comparisons."),
    Entry("table", "plan", "hetmtl.reporting.plan:plan_table", sections=("report", "claims", "relations"),
          reads=("receipts", "relations"),
          caption="Plan (ours): the seeds each claim needs to be decided at 80% power after Holm's correction, "
                  "from this suite's runs (`hetmtl plan --suite paper --pilot demo` adds the paper suite's cost)."),
    Entry("figure", "fig08_overall", f"{_AGG}:fig08_overall",
          caption="Reproduces the paper's Fig. 8: average test accuracy of every method in every table "
                  "(params/report.yaml `highlight`: the methods in their own colour; baselines blue; * above a bar: "
                  "significantly different from the table's reference, MTAL, by the tables' p column: paired "
                  "t-test over seeds, Holm-adjusted, p < 0.05)."),
    Entry("figure", "fig09_threshold_sweep", f"{_AGG}:fig09_threshold_sweep",
          caption="Reproduces the paper's Fig. 9: MTAL's accuracy against the threshold rho."),
    Entry("figure", "fig10_activations_conv1", f"{_AGG}:fig10_activations_conv1", reads=("receipts", "models"),
          caption="Reproduces the paper's Fig. 10: activation maps of shared kernels, first conv layer " + _SHARED),
    Entry("figure", "fig11_activations_conv2", f"{_AGG}:fig11_activations_conv2", reads=("receipts", "models"),
          caption="Reproduces the paper's Fig. 11: activation maps of shared kernels, second conv layer " + _SHARED),
    Entry("figure", "fig12_mtal_loss", f"{_AGG}:fig12_mtal_loss",
          caption="Reproduces the paper's Fig. 12: MTAL's per-task training loss per optimisation step (one "
                  "colour per task; mean over seeds, averaged over claim C10's window of steps, ours)."),
    Entry("figure", "fig13_pair_sharing", f"{_AGG}:fig13_pair_sharing", reads=("receipts", "relations"),
          sections=("report", "relations"),
          caption="Fig. 13 (ours): each task pair's shared fraction beyond the first conv layer against its R, "
                  "per MTAL reading (6 pairs per group: weak evidence)."),
)
KINDS = ("table", "figure")


def items(params, kind: str) -> list[tuple[str, Entry]]:
    """(name, entry) of every table or figure of the grid, in the catalogue's order."""
    out = []
    for e in CATALOGUE:
        if e.kind == kind:
            out += [(n, e) for n in params[e.from_params]] if e.from_params else [(e.name, e)]
    return out


def names(params, kind: str) -> list[str]:
    return [n for n, _ in items(params, kind)]


def fixed_names(kind: str) -> list[str]:
    """The names that do not come from params (the CLI's help lists them)."""
    return [e.name for e in CATALOGUE if e.kind == kind and not e.from_params]


def described(kind: str) -> str:
    """Every name of a kind, for a reader without params at hand (the CLI's help)."""
    return " or ".join(f"a key of params `{e.from_params}`" if e.from_params else e.name
                     for e in CATALOGUE if e.kind == kind)


def entry(params, kind: str, name: str) -> Entry:
    for n, e in items(params, kind):
        if n == name:
            return e
    raise UserError(f"no {kind} {name!r}: the catalogue (hetmtl/reporting/catalogue.py) and params/grid.yaml "
                    f"give {', '.join(names(params, kind))}")


def figure_file(suite: str, name: str, ext: str = "png") -> Path:
    return paths.figure(suite, name).with_suffix(f".{ext}")


def item_file(suite: str, kind: str, name: str, ext: str) -> Path:
    return paths.table_file(suite, name, ext) if kind == "table" else figure_file(suite, name, ext)


def files(params, suite: str, kind: str, name: str) -> list[Path]:
    """Every file one item is written as (relative to the project root)."""
    return [item_file(suite, kind, name, ext) for ext in entry(params, kind, name).formats]


def data_notes(params, tasks: list[str] | None = None) -> str:
    """The data choices of ours about the shown tasks (params/datasets.yaml
    ``tasks.<T>.note``, e.g. how Coil-20 is made), in task order; ``tasks``:
    those of every group."""
    if tasks is None:
        tasks = list(dict.fromkeys(t for g in params["groups"] for t in params.tasks_of(g)))
    return " ".join(params["tasks"][t]["note"] for t in tasks if params["tasks"][t].get("note"))


def caption(params, kind: str, name: str) -> str:
    """The item's caption in the `snakemake --report` (the suite's scale notes come
    from the rule), with the data choices of ours about the tasks it shows
    (:func:`data_notes`: a group's table its group's
    tasks, any other item every group's)."""
    e = entry(params, kind, name)
    spec = params[e.from_params][name] if e.from_params else {}
    text = e.caption.format(**spec) if e.from_params else e.caption
    notes = data_notes(params, params.tasks_of(spec["group"]) if "group" in spec else None)
    return f"{text} {notes}" if notes else text


def sections(params, kind: str, name: str) -> tuple[str, ...]:
    """The params sections one item reads beyond the grid (its job's rerun trigger)."""
    return entry(params, kind, name).sections


def all_sections() -> list[str]:
    """Every params section some item reads (dvc.yaml's report stage lists them)."""
    return list(dict.fromkeys(s for e in CATALOGUE for s in e.sections))


def showcase_runs(params, suite: str) -> list:
    """The runs of params/report.yaml ``showcase`` (the models Figs. 10-11 load)."""
    show = params["report"]["showcase"]
    return [k for k in params.runs(suite) if k["setting"] == show["setting"] and k["method"] == show["method"]]


def inputs(params, suite: str, kind: str, name: str) -> dict[str, list[str]]:
    """What one item reads, as files (its Snakemake job's inputs)."""
    e = entry(params, kind, name)
    out = {}
    if "receipts" in e.reads:
        out["receipts"] = [str(run.receipt) for run in params.runs(suite)]
        out["sweeps"] = [str(run.receipt) for run in params.sweep_runs(suite)]
    if "models" in e.reads:
        out["models"] = [str(run.model) for run in showcase_runs(params, suite)]
    if "relations" in e.reads:
        out["relations"] = relations_files(params, suite)
    return out


def relations_files(params, suite: str) -> list[str]:
    """The relations CSVs of the groups whose R a run of the suite reads (a prior-setting run)."""
    from hetmtl import paths

    groups = dict.fromkeys(r.group for r in params.runs(suite) if r.setting == "prior")
    return [str(paths.relations_csv(suite, g)) for g in groups]


__all__ = ["CATALOGUE", "Entry", "FIGURE_FORMATS", "KINDS", "READS", "TABLE_FORMATS", "all_sections", "caption",
           "data_notes", "described", "entry", "figure_file", "files", "fixed_names", "inputs", "item_file", "items",
           "names", "sections", "showcase_runs"]
