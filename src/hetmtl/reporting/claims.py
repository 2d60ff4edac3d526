"""The paper's claims, checked: params/claims.yaml -> the ``claims`` table.

Each claim of params/claims.yaml names a kind; each kind is one function here,
found through the registry :data:`KINDS` (never by the claim's id). A kind turns
the claim into comparisons: per-seed differences in the claim's direction (a's
accuracy minus b's; a bound minus a quantity), each tested by a two-sided
one-sample t-test over seeds (a paired t-test for two methods) with its 95% t
interval. The p-values of one claim are Holm-adjusted together.

How the quantifier is read (ours, one rule for every kind). The comparisons are
ordered from the strongest evidence for the claim to the strongest against it
(significant-looking positive effects first, by adjusted p, then negative ones,
weakest first). A claim needing ``k`` comparisons (``all``: every one of n;
``most``: more than half, n // 2 + 1) is decided by the k-th of that order:

* supported when it goes the claim's way with adjusted p < alpha (then so do
  the k before it: enough comparisons hold significantly);
* contradicted when it goes the other way with adjusted p < alpha (then so do
  the n - k + 1 after it: too many fail significantly for the claim to hold);
* inconclusive otherwise: its interval spans zero (then so does its test), or no
  test is possible (fewer than two seeds).

A difference that is the same on every seed has no spread for a t-test. Where
the claim declares its quantity deterministic (``deterministic: true``, e.g. the
parameters MTAL keeps, C9) p = 0 (its interval is that point); otherwise the
exact sign-flip test gives p = 2^(1-n) (all n differences of one sign). An
all-zero difference has p = 1. A seed whose difference is not finite (a
diverged run's NaN accuracy) is dropped, with a note; n counts finite pairs
only. A comparison with no test (fewer than two seeds) stays in its claim's
Holm family with p = 1.

Where a claim involves a method with readings (params/grid.yaml ``readings``:
MTAL's start), it is checked once per reading, the reading's runs standing in
for the method's.

The table is a pure function of run records (:func:`evaluate`): the final
metrics of :func:`hetmtl.reporting.collect.collect`, the sweep records of
``collect_sweeps`` and the loss histories of ``step_histories`` (the loss per optimisation step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hetmtl.reporting.tables import _html, _latex, _markdown, ci_halfwidth, holm

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
ACC = "test_acc/mean"
QUANTIFIERS = {  # how many of n comparisons a claim needs
    "all": lambda n: n,
    "most": lambda n: n // 2 + 1,  # more than half
    "half": lambda n: (n + 1) // 2,  # at least half
}


@dataclass
class Comparison:
    """One comparison of a claim: per-seed differences in the claim's direction."""

    label: str
    diffs: pd.Series  # indexed by seed
    runs: set = field(default_factory=set)
    note: str = ""  # why no test is possible (when diffs is empty); seeds dropped
    deterministic: bool = False  # the kind declares the quantity the same on every seed (no test needed)
    p_adj: float = float("nan")

    def __post_init__(self):
        d = self.diffs.astype(float)
        bad = d.index[~np.isfinite(d.to_numpy())]
        if len(bad):  # a diverged run (NaN accuracy): its seed drops out, n counts finite pairs only
            self.diffs = d[np.isfinite(d.to_numpy())]
            dropped = f"seed{'s' if len(bad) > 1 else ''} {', '.join(str(s) for s in bad)} dropped: not finite"
            self.note = f"{self.note}; {dropped}" if self.note else dropped

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def effect(self) -> float:
        return float(self.diffs.mean()) if self.n else float("nan")

    @property
    def ci(self) -> float:
        return ci_halfwidth(self.diffs.to_numpy()) if self.n > 1 else float("nan")

    @property
    def p(self) -> float:
        """Two-sided one-sample t-test of the mean difference against zero (NaN: no test)."""
        from scipy import stats

        d = self.diffs.to_numpy(dtype=float)
        if len(d) < 2:
            return float("nan")
        if np.all(d == d[0]):  # no spread
            if d[0] == 0:
                return 1.0  # no difference at all
            if self.deterministic:
                return 0.0  # a deterministic quantity: its interval is that point
            return 2.0 ** (1 - len(d))  # exact sign-flip test: all n differences of one sign
        return float(stats.ttest_1samp(d, 0.0).pvalue)

    def outcome(self, alpha: float) -> int:
        """+1: significantly the claim's way; -1: significantly against it; 0: neither."""
        if pd.isna(self.p_adj) or self.p_adj >= alpha or self.effect == 0:
            return 0
        return 1 if self.effect > 0 else -1


def order_key(c: Comparison) -> tuple:
    """Strongest evidence for the claim first, strongest against it last."""
    p = 1.0 if pd.isna(c.p_adj) else c.p_adj
    if pd.isna(c.effect):
        return (1, 0.0)
    return (0, p) if c.effect > 0 else (2, -p) if c.effect < 0 else (1, 0.0)


def decide(comparisons: list[Comparison], need: int, alpha: float) -> tuple[str, Comparison | None]:
    """Holm-adjust the claim's comparisons and give its verdict and its deciding comparison."""
    if not comparisons:
        return INCONCLUSIVE, None
    # a comparison without a test stays in the family with p = 1 (more conservative than leaving it out)
    adjusted = holm({i: 1.0 if pd.isna(c.p) else c.p for i, c in enumerate(comparisons)})
    for i, c in enumerate(comparisons):
        c.p_adj = float("nan") if pd.isna(c.p) else adjusted[i]
    ordered = sorted(comparisons, key=order_key)
    deciding = ordered[need - 1]
    verdict = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}[deciding.outcome(alpha)]
    return verdict, deciding


# ----------------------------------------------------------------- the run records a claim reads

@dataclass
class Context:
    """What a claim reads: the grid, the records, and the reading (method -> the run standing in)."""

    params: object
    suite: str
    records: pd.DataFrame
    sweeps: pd.DataFrame | None = None
    histories: pd.DataFrame | None = None  # group, setting, method, seed, task, step, value (loss per step)
    reading: dict = field(default_factory=dict)
    relations: dict | None = None  # group -> R (rows in the group's task order), None: not estimated
    used: set = field(default_factory=set)  # the methods the claim read (before the reading)
    cells: list = field(default_factory=list)  # "where[what: which]" of what it read

    def run_of(self, table: str, method: str) -> tuple[str, str, str]:
        """(group, run setting, method run) of a table's row, the reading's run in its place."""
        spec = self.params["tables"][table]
        setting = "shared" if method in self.params["shared_methods"] else spec["setting"]
        self.used.add(method)
        return spec["group"], setting, self.reading.get(method, method)

    def rows(self, table: str) -> list[str]:
        return [m for _, m in self.params.table_methods(self.params["tables"][table]["setting"])]

    def values(self, group: str, setting: str | None, method: str, metric: str) -> tuple[pd.Series, set]:
        r = self.records
        sel = r[(r.group == group) & (r.method == method) & (r.metric == metric)]
        if setting is not None:
            sel = sel[sel.setting == setting]
        return sel.groupby("seed")["value"].mean(), set(sel.run_id)

    def cell(self, table: str, method: str, metric: str = ACC) -> tuple[pd.Series, set]:
        return self.values(*self.run_of(table, method), metric)

    def note(self, text: str) -> None:
        if text not in self.cells:
            self.cells.append(text)


def _methods(ctx: Context, table: str, chosen, exclude: list[str]) -> list[str]:
    """A claim's side of a table: the methods named that the table has, or ``others``."""
    rows = ctx.rows(table)
    if chosen == "others":  # the table's rows the paper has (claims.yaml ``exclude``: rows it never compared)
        return [m for m in rows if m not in exclude and m not in ctx.params["claims"].get("exclude", [])]
    return [m for m in chosen if m in rows]


def _paired(label: str, a: tuple[pd.Series, set], b: tuple[pd.Series, set]) -> Comparison:
    common = a[0].index.intersection(b[0].index)
    return Comparison(label, (a[0][common] - b[0][common]).sort_index(), a[1] | b[1])


def _display(ctx: Context, method: str) -> str:
    return ctx.reading.get(method, method)


# ----------------------------------------------------------------- the kinds
# Each: (claim, ctx) -> (comparisons, how many it needs, unit of the effect).

def beats(claim: dict, ctx: Context):
    """``better`` beat ``worse`` in each table (``pool``: on the mean over the tables, per seed)."""
    pairs = []  # (table, a, b)
    for t in claim["tables"]:
        fixed = claim["worse"] if claim["better"] == "others" else claim["better"]
        better = _methods(ctx, t, claim["better"], fixed if claim["better"] == "others" else [])
        worse = _methods(ctx, t, claim["worse"], better if claim["worse"] == "others" else [])
        pairs += [(t, a, b) for a in better for b in worse if a != b]
        ctx.note(f"{t}[Average: {', '.join(_display(ctx, m) for m in dict.fromkeys(better + worse))}]")
    if not claim.get("pool"):
        comps = [_paired(f"{t}: {_display(ctx, a)} − {b}", ctx.cell(t, a), ctx.cell(t, b)) for t, a, b in pairs]
        return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "pp"
    # pooled: per seed, the mean over the tables of each side (Fig. 8's overall view)
    comps = []
    side = "worse" if claim["better"] != "others" else "better"
    for other in dict.fromkeys(x for _, a, b in pairs for x in ([b] if side == "worse" else [a])):
        mine = [(t, a, b) for t, a, b in pairs if (b if side == "worse" else a) == other]
        if len(mine) != len(claim["tables"]):
            continue  # a method not in every table has no pooled mean
        a_vals = [ctx.cell(t, a) for t, a, _ in mine]
        b_vals = [ctx.cell(t, b) for t, _, b in mine]
        # a seed with a NaN in any table (a diverged run) keeps its NaN mean: the comparison
        # drops it with a note, as an unpooled claim does (dropping it here was silent)
        a_mean = pd.concat([v for v, _ in a_vals], axis=1).mean(axis=1, skipna=False)
        b_mean = pd.concat([v for v, _ in b_vals], axis=1).mean(axis=1, skipna=False)
        runs = set().union(*(r for _, r in a_vals + b_vals))
        left = "/".join(dict.fromkeys(_display(ctx, a) for _, a, _ in mine))
        right = "/".join(dict.fromkeys(b for _, _, b in mine))
        comps.append(_paired(f"mean of {', '.join(claim['tables'])}: {left} − {right}", (a_mean, runs),
                             (b_mean, set())))
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "pp"


def prior_gain(claim: dict, ctx: Context):
    """Each method with the prior beats its counterpart without it, table against table."""
    comps = []
    for with_prior, without in claim["tables"]:
        rows_p, rows_n = ctx.rows(with_prior), ctx.rows(without)
        gone = set(ctx.params["claims"].get("exclude", []))  # rows the paper never compared
        pairs = [(a, b) for a, b in claim["pairs"].items()
                 if a in rows_p and b in rows_n and a not in gone and b not in gone]
        for a, b in pairs:
            comps.append(_paired(f"{with_prior} {_display(ctx, a)} − {without} {_display(ctx, b)}",
                                 ctx.cell(with_prior, a), ctx.cell(without, b)))
        ctx.note(f"{with_prior}[Average: {', '.join(_display(ctx, a) for a, _ in pairs)}]")
        ctx.note(f"{without}[Average: {', '.join(_display(ctx, b) for _, b in pairs)}]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "pp"


def task_gain(claim: dict, ctx: Context):
    """``method`` beats ``against`` on each named task of each table whose group has it."""
    comps = []
    for t in claim["tables"]:
        tasks = [k for k in claim["tasks"] if k in ctx.params.tasks_of(ctx.params["tables"][t]["group"])]
        others = _methods(ctx, t, claim["against"], [claim["method"]])
        for task in tasks:
            metric = f"test_acc/{task}"
            comps += [_paired(f"{t} {task}: {_display(ctx, claim['method'])} − {b}",
                              ctx.cell(t, claim["method"], metric), ctx.cell(t, b, metric)) for b in others]
        if tasks:
            ctx.note(f"{t}[{', '.join(tasks)}: {', '.join(_display(ctx, m) for m in [claim['method'], *others])}]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "pp"


def _value(v) -> str:
    """A swept value as text (a number as %g; a name as it is)."""
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _shown_in(claim: dict) -> str:
    """The paper's figure or table a claim rests on (claims.yaml ``shown_in``), as a prefix."""
    return f"{claim['shown_in']} " if claim.get("shown_in") else ""


def sweep_prefers(claim: dict, ctx: Context):
    """In each group, the paper's stated value of the sweep beats the other stated value.

    ``prefers``: group -> [the value the paper states for it, the value it is
    compared with] (C8: related 0.4 against 0.55, unrelated 0.55 against 0.4),
    each a paired difference over the sweep's seeds; the values are the paper's,
    stated before our runs, not the best of the same data. A value the suite does
    not sweep gives that comparison no test, with a note naming it.
    """
    sw = ctx.sweeps
    name = claim["sweep"]
    sw = sw[(sw.sweep == name) & (sw.metric == ACC)] if sw is not None else pd.DataFrame(
        columns=["group", "sweep", "sweep_value", "seed", "run_id", "metric", "value"])
    swept = ctx.params.suite(ctx.suite)["sweeps"].get(name, {}).get("values", [])

    def find(values, v):
        return next((x for x in values if x == v or (isinstance(x, (int, float)) and isinstance(v, (int, float))
                                                      and math.isclose(x, v))), None)

    comps = []
    for g, (v, w) in claim["prefers"].items():
        label = f"{g}: {name} {_value(v)} − {_value(w)}"
        missing = [_value(x) for x in (v, w) if find(swept, x) is None]
        ctx.note(f"{_shown_in(claim)}{g}[{name} = {_value(v)}, {_value(w)}]")
        if missing:
            comps.append(Comparison(label, pd.Series(dtype=float), note=(
                f"{name} = {', '.join(missing)} not in this suite's sweep ({', '.join(_value(x) for x in swept)})")))
            continue
        sel = sw[sw.group == g]
        series = {x: (s.set_index("seed")["value"], set(s.run_id)) for x, s in sel.groupby("sweep_value")}
        a, b = find(series, v), find(series, w)
        empty = (pd.Series(dtype=float), set())
        comps.append(_paired(label, series[a] if a is not None else empty, series[b] if b is not None else empty))
    # the sweep's runs are its method's default reading only: no reading stands in here
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "pp"


def below(claim: dict, ctx: Context):
    """``metric`` of each named method's runs, every group, lies below ``bound`` (effect: bound - value)."""
    comps = []
    for m in claim["methods"]:
        run = ctx.reading.get(m, m)
        ctx.used.add(m)
        for g in ctx.params["groups"]:
            values, runs = ctx.values(g, None, run, claim["metric"])
            if len(values):
                comps.append(Comparison(f"{g} {run}: {claim['bound']:g} − {claim['metric']}",
                                        (claim["bound"] - values).sort_index(), runs,
                                        deterministic=bool(claim.get("deterministic"))))
        ctx.note(f"{claim.get('shown_in', '')}[{claim['metric']}: {run}, {', '.join(ctx.params['groups'])}]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "%"


def converged_within(claim: dict, ctx: Context):
    """Each task's training loss of each named method has converged by ``steps`` optimisation steps.

    Reads the training loss per optimisation step (the receipts' ``step_loss``), the mean of the
    trailing ``window`` steps (ours: one batch's loss is noisy) written S(t). Per seed: r = (S(steps) -
    S(last)) / (S(first full window) - S(last)), the share of the logged decrease still to come after
    ``steps``; effect: ``tolerance`` - r. No test for a seed whose run took fewer steps than ``steps``
    (its step count read from its records, said in the note), whose first full window ends after
    ``steps``, or whose curve is flat (no decrease to share).
    """
    comps = []
    window = int(claim["window"])
    h = ctx.histories if ctx.histories is not None else pd.DataFrame(
        columns=["group", "setting", "method", "seed", "task", "step", "value"])
    for m in claim["methods"]:
        run = ctx.reading.get(m, m)
        ctx.used.add(m)
        for g in ctx.params["groups"]:
            sel = h[(h.group == g) & (h.method == run)]
            runs = ctx.values(g, None, run, ACC)[1]
            for task in ctx.params.tasks_of(g):
                diffs, short, early, flat = {}, [], [], 0
                for seed, curve in sel[sel.task == task].groupby("seed"):
                    curve = curve.sort_values("step")
                    smooth = curve.set_index("step")["value"].astype(float).rolling(window).mean().dropna()
                    last = int(curve.step.iloc[-1])
                    if last < claim["steps"]:
                        short.append(last)
                        continue
                    if smooth.empty or smooth.index[0] > claim["steps"]:  # the step lies in the first window
                        early.append(int(curve.step.iloc[0]))
                        continue
                    drop = smooth.iloc[0] - smooth.iloc[-1]
                    if not abs(drop) > 1e-12:  # a flat curve: no logged decrease to take a share of
                        flat += 1
                        continue
                    r = (smooth[smooth.index <= claim["steps"]].iloc[-1] - smooth.iloc[-1]) / drop
                    diffs[seed] = claim["tolerance"] - r
                notes = []
                if short:
                    notes.append(f"runs of {max(short)} optimisation steps (as logged) < the claim's {claim['steps']}: "
                                 "too short to tell")
                if early:
                    notes.append(f"step {claim['steps']} lies in the first {window}-step window (logged from step "
                                 f"{max(early)})")
                if flat:
                    notes.append(f"{flat} flat curve{'s' if flat > 1 else ''}: no logged decrease")
                note = "; ".join(notes)
                comps.append(Comparison(f"{g} {run} {task}: {claim['tolerance']:g} − share of the loss drop "
                                        f"after {claim['steps']} steps", pd.Series(diffs, dtype=float).sort_index(),
                                        runs, note))
        ctx.note(f"{claim.get('shown_in', '')}[train_loss per step and task: {run}, "
                 f"{', '.join(ctx.params['groups'])}]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "%"


@dataclass(frozen=True)
class Kind:
    """A kind of claim: its function and the run records it reads (besides the final metrics:
    ``sweeps``, collect_sweeps; ``histories``, the training-loss histories)."""

    run: object
    inputs: frozenset = frozenset()


# ----------------------------------------------------------------- criteria of ours (issue 28)
# MTAL's delta reading and its random_matched control (protocol section 6): fixed in params/claims.yaml
# before the first run that reports them; fractions shown in % of the task kernels.

def _reading_runs(ctx: Context, method: str) -> str:
    ctx.used.add(method)
    return method


def partial_sharing(claim: dict, ctx: Context):
    """Beyond the first conv layer, each named method's shared fraction of a layer lies in
    [low, high] and is at least ``null_factor`` times its permutation null
    (``sharing/null/<layer>``): per seed the smallest margin of the three, in %."""
    from hetmtl.models import BACKBONES, conv_names

    layers = conv_names(BACKBONES[ctx.params.suite(ctx.suite)["backbone"]])[1:]
    comps = []
    for m in claim["methods"]:
        run = _reading_runs(ctx, m)
        for g in ctx.params["groups"]:
            for layer in layers:
                f, runs = ctx.values(g, None, run, f"sharing/{layer}")
                null, _ = ctx.values(g, None, run, f"sharing/null/{layer}")
                common = f.index.intersection(null.index)
                f, null = f[common], null[common]
                margin = pd.concat([f - claim["low"], claim["high"] - f, f - claim["null_factor"] * null],
                                   axis=1).min(axis=1)
                comps.append(Comparison(f"{g} {run} {layer}: min(f − {claim['low']:g}, {claim['high']:g} − f, "
                                        f"f − {claim['null_factor']:g}·null)", margin.sort_index(), runs))
        ctx.note(f"Table 6[{run}: {', '.join(layers)}; null rows]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "%"


def reading_beats(claim: dict, ctx: Context):
    """Each named reading's average test accuracy beats its control's, per group, paired over seeds."""
    comps = []
    for a, b in claim["pairs"].items():
        for g in ctx.params["groups"]:
            comps.append(_paired(f"{g}: {_reading_runs(ctx, a)} − {_reading_runs(ctx, b)}",
                                 ctx.values(g, None, a, ACC), ctx.values(g, None, b, ACC)))
        ctx.note(f"Table 6[Average test accuracy: {a}, {b}]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "pp"


def group_shares_more(claim: dict, ctx: Context):
    """``metric`` of each named method is higher in group ``more`` than in ``less`` (paired by seed)."""
    comps = []
    for m in claim["methods"]:
        run = _reading_runs(ctx, m)
        more, runs_a = ctx.values(claim["more"], None, run, claim["metric"])
        less, runs_b = ctx.values(claim["less"], None, run, claim["metric"])
        comps.append(_paired(f"{run}: {claim['more']} − {claim['less']} ({claim['metric']})",
                             (more, runs_a), (less, runs_b)))
        ctx.note(f"Table 6[{claim['metric']}: {run}, {claim['more']}, {claim['less']}]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "%"


def pair_spearman(params, group: str, records: pd.DataFrame, method: str, R) -> tuple[pd.Series, set]:
    """Per seed: Spearman's correlation of each task pair's shared fraction beyond the first
    layer (``sharing/pair/i-j``) with R_ij over the group's task pairs."""
    from scipy import stats

    T = len(params.tasks_of(group))
    pairs = [(i, j) for i in range(T) for j in range(i + 1, T)]
    sel = records[(records.group == group) & (records.method == method)]
    out, runs = {}, set(sel.run_id)
    for seed, s in sel.groupby("seed"):
        vals = s.set_index("metric")["value"]
        shared = [vals.get(f"sharing/pair/{i}-{j}", float("nan")) for i, j in pairs]
        rel = [R[i][j] for i, j in pairs]
        if any(pd.isna(shared)) or np.ptp(shared) == 0 or np.ptp(rel) == 0:
            out[seed] = float("nan")  # no ranking to correlate (a constant side): the seed drops out
        else:
            out[seed] = float(stats.spearmanr(shared, rel).statistic)
    return pd.Series(out, dtype=float).sort_index(), runs


def follows_relations(claim: dict, ctx: Context):
    """Per group and named method, Spearman's correlation of per-pair sharing with R is
    above 0 (per seed, then a t-test over seeds; T = 4 tasks give only 6 pairs)."""
    comps = []
    for m in claim["methods"]:
        run = _reading_runs(ctx, m)
        for g in ctx.params["groups"]:
            label = f"{g} {run}: Spearman(shared fraction, R) over task pairs"
            R = (ctx.relations or {}).get(g)
            if R is None:
                comps.append(Comparison(label, pd.Series(dtype=float), note=f"no R for {g} (its relations stage)"))
                continue
            comps.append(Comparison(label, *pair_spearman(ctx.params, g, ctx.records, run, R)))
        ctx.note(f"per-pair table[{run}: sharing/pair against R]")
    return comps, QUANTIFIERS[claim["quantifier"]](len(comps)), "ρ"


KINDS = {
    "beats": Kind(beats),
    "prior_gain": Kind(prior_gain),
    "task_gain": Kind(task_gain),
    "sweep_prefers": Kind(sweep_prefers, frozenset({"sweeps"})),
    "below": Kind(below),
    "converged_within": Kind(converged_within, frozenset({"histories"})),
    "partial_sharing": Kind(partial_sharing),
    "reading_beats": Kind(reading_beats),
    "group_shares_more": Kind(group_shares_more),
    "follows_relations": Kind(follows_relations, frozenset({"relations"})),
}


# ----------------------------------------------------------------- readings and the table

def readings(params, suite: str) -> list[tuple[str, dict]]:
    """(label, method -> the run standing in for it) of the default and each reading
    (grid.yaml ``readings``, grouped by what they change: MTAL's start)."""
    groups: dict[str, dict] = {}
    default: dict[str, str] = {}
    rows = {m for spec in params["settings"].values() for m in spec["methods"]}
    for r in params.readings(suite):
        variant, base = r["method"], params.base_method(r["method"])
        if base == variant or base not in rows:
            continue  # not a variant of a table's row (the delta reading, its control): claims C11-C14 read them
        mine, theirs = params.method(variant), params.method(base)
        changed = {k: v for k, v in mine.items() if k != "variant_of" and theirs.get(k) != v}
        label = ", ".join(f"{k}: {v}" for k, v in sorted(changed.items()))
        groups.setdefault(label, {})[base] = variant
        default.update({k: theirs[k] for k in changed})
    first = ", ".join(f"{k}: {v}" for k, v in sorted(default.items())) or "default"
    return [(first, {}), *groups.items()]


@dataclass
class Checked:
    """One claim checked under one reading: its comparisons, how many it needs, the verdict."""

    claim: str
    reading: str  # the reading's label, "–" where the claim reads no method with readings
    rests_on: list
    comparisons: list[Comparison]
    need: int
    unit: str
    verdict: str
    deciding: Comparison | None


def check(params, suite: str, records: pd.DataFrame, sweeps: pd.DataFrame | None = None,
          histories: pd.DataFrame | None = None, relations: dict | None = None) -> list[Checked]:
    """Every claim under every reading it reads (the claims table and the plan read this)."""
    cfg = params["claims"]
    out = []
    all_readings = readings(params, suite)
    for cid, claim in cfg["items"].items():
        for k, (label, reading) in enumerate(all_readings):
            ctx = Context(params, suite, records, sweeps, histories, reading, relations)
            comps, need, unit = KINDS[claim["kind"]].run(claim, ctx)
            if k and not (ctx.used & set(reading)):
                continue  # the reading changes nothing this claim reads
            verdict, deciding = decide(comps, need, cfg["alpha"])
            involved = any(ctx.used & set(r) for _, r in all_readings[1:])
            out.append(Checked(cid, label if involved else "–", list(ctx.cells), comps, need, unit, verdict,
                               deciding))
    return out


def evaluate(params, suite: str, records: pd.DataFrame, sweeps: pd.DataFrame | None = None,
             histories: pd.DataFrame | None = None, relations: dict | None = None) -> pd.DataFrame:
    """One row per claim (per reading where the claim reads a method that has readings)."""
    cfg = params["claims"]
    rows = []
    for c in check(params, suite, records, sweeps, histories, relations):
        claim, comps, need, unit, verdict, deciding = (cfg["items"][c.claim], c.comparisons, c.need, c.unit,
                                                       c.verdict, c.deciding)
        runs = set().union(*(x.runs for x in comps)) if comps else set()
        tested = [x for x in comps if not pd.isna(x.p_adj)]
        rows.append({
            "claim": c.claim, "reading": c.reading, "statement": claim["statement"],
            "rests_on": "; ".join(c.rests_on), "runs": len(runs),
            "comparisons": len(comps), "needed": need,
            "better": sum(x.outcome(cfg["alpha"]) > 0 for x in comps),
            "worse": sum(x.outcome(cfg["alpha"]) < 0 for x in comps),
            "tested": len(tested),
            "deciding": deciding.label if deciding else "none",
            "effect": deciding.effect if deciding else float("nan"),
            "ci": deciding.ci if deciding else float("nan"),
            "n": deciding.n if deciding else 0,
            "p_holm": deciding.p_adj if deciding else float("nan"),
            "note": (deciding.note if deciding else "nothing to compare in this grid"),
            "unit": unit, "verdict": verdict,
        })
    return pd.DataFrame(rows)


def caption(params, suite: str, note: str) -> str:
    alpha = params["claims"]["alpha"]
    gone = params["claims"].get("exclude", [])
    caveats = "".join(f"{cid}: {c['caveat']} " for cid, c in params["claims"]["items"].items() if c.get("caveat"))
    excluded = (f"\"Other methods\" and C5's pairs are the paper's rows only: {', '.join(gone)} (not in the paper's "
                "tables; params/claims.yaml exclude) is left out. ") if gone else ""
    return (
        "The paper's claims (section 4; params/claims.yaml: each claim's sentence, the tables or figures it rests "
        "on and how it is read), checked on this suite's runs. Each claim is broken into comparisons, each a "
        "per-seed difference in the claim's direction with a two-sided t-test over seeds (paired for two "
        f"methods) and its 95% t interval; a claim's p-values are Holm-adjusted together. `all` needs every "
        "comparison, `most` more than half. Verdict: supported when enough comparisons go the claim's way with "
        f"Holm-adjusted p < {alpha:g}; contradicted when so many go significantly the other way that the claim "
        "cannot hold (all: one; most: at least half); inconclusive otherwise, at this number of seeds (the "
        "interval spans zero, or one seed gives no test). The row shows the deciding comparison: with the "
        "comparisons ordered from the strongest for the claim to the strongest against, the one the claim "
        "needs last (all: the n-th; most: the (n//2+1)-th); its effect (pp: accuracy points; %: of the bound or "
        "of the loss drop) with its unadjusted 95% CI, and its Holm-adjusted p. A difference equal on every seed "
        "has p = 2^(1-n) (exact sign-flip test; p = 0 only for a quantity the claim declares deterministic; 1 "
        "when zero); a seed with a non-finite difference (a diverged run) is dropped, with a note; a comparison "
        "without a test counts in the Holm family with p = 1. "
        "Comparisons: their number, and those significantly for (+) and against (−). "
        "Readings: MTAL's start (protocol section 6), a row each where the claim reads MTAL. "
        + excluded + caveats + note
    )


def _fmt(row) -> tuple[str, str, str]:
    """Effect, CI (x100: pp or %; a correlation, unit ρ, as it is) and p as text; one decimal, more
    for an effect below 1 (two digits)."""
    if pd.isna(row.effect):
        return "–", "–", "n/a"
    scale = 1.0 if row.unit == "ρ" else 100.0
    e = scale * row.effect
    digits = 1 if abs(e) >= 1 or e == 0 else min(4, 1 - math.floor(math.log10(abs(e))))
    if row.unit == "ρ":
        digits = 2
    effect = f"{e:+.{digits}f} {row.unit}"
    ci = "–" if pd.isna(row.ci) else f"[{e - scale * row.ci:+.{digits}f}, {e + scale * row.ci:+.{digits}f}]"
    p = "n/a" if pd.isna(row.p_holm) else f"{row.p_holm:.3f}"
    return effect, ci, p


COLUMNS = ["Claim", "Reading", "Statement (paper)", "Rests on", "Runs", "Comparisons", "Deciding comparison",
           "Effect", "95% CI", "p (Holm)", "Verdict"]


def cells(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for row in table.itertuples():
        effect, ci, p = _fmt(row)
        deciding = row.deciding + (f" ({row.note})" if row.note else "")
        if row.n == 1:
            deciding += " (one seed: no test)"
        rows.append([row.claim, row.reading, f"“{row.statement}”", row.rests_on, str(row.runs),
                     f"{row.comparisons} (need {row.needed}; +{row.better}, −{row.worse})", deciding,
                     effect, ci, p, row.verdict if row.verdict != INCONCLUSIVE else
                     f"{INCONCLUSIVE} ({row.n} seed{'' if row.n == 1 else 's'})" if row.n else
                     f"{INCONCLUSIVE} (no test)"])
    text = pd.DataFrame(rows, columns=COLUMNS)
    bold = pd.DataFrame(False, index=text.index, columns=text.columns)
    bold["Verdict"] = (table.verdict != INCONCLUSIVE).to_numpy()
    return text, bold


# The summary (the ``claims`` table) and the details (``claims_details``): one row each per claim and reading.
SUMMARY = ["Claim", "Reading", "Verdict", "Deciding comparison", "Effect", "95% CI", "p (Holm)"]
DETAILS = ["Claim", "Reading", "Statement (paper)", "Rests on", "Runs", "Comparisons"]


def _part(table: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    text, bold = cells(table)
    return text[columns], bold[columns]


def to_markdown(table: pd.DataFrame, cap: str, columns: list[str] = SUMMARY) -> str:
    text, bold = _part(table, columns)
    return _markdown(text.map(lambda s: s.replace("|", "\\|")), bold, cap)


def to_latex(table: pd.DataFrame, cap: str, columns: list[str] = SUMMARY) -> str:
    return _latex(*_part(table, columns), cap)


def to_html(table: pd.DataFrame, cap: str, uid: str = "claims", columns: list[str] = SUMMARY) -> str:
    return _html(*_part(table, columns), cap, uid)


def to_csv(table: pd.DataFrame) -> str:
    out = table.copy()
    out["ci_low"], out["ci_high"] = out.effect - out.ci, out.effect + out.ci
    return out.drop(columns=["ci"]).to_csv(index=False, float_format="%.6f")


# ----------------------------------------------------------------- the catalogue's builder

def loss_histories(params, suite: str, root) -> pd.DataFrame:
    """The training loss per optimisation step of the methods read by claims whose kind needs ``histories``
    (and their readings)."""
    from hetmtl.reporting.collect import step_histories

    named = {m for c in params["claims"]["items"].values() if "histories" in KINDS[c["kind"]].inputs
             for m in c["methods"]}
    named |= {r[m] for _, r in readings(params, suite) for m in named if m in r}
    frames = []
    for method, setting in sorted({(run.method, run.setting) for run in params.runs(suite) if run.method in named}):
        h = step_histories(params, suite, root, method, setting)
        frames.append(h.assign(method=method, setting=setting))
    return pd.concat(frames, ignore_index=True) if frames else None


def relations_of(params, suite: str, root) -> dict:
    """group -> R from its relations stage's CSV (given R from params), groups without one left out."""
    from pathlib import Path

    from hetmtl import paths
    from hetmtl.resolve import read_relations

    out = {}
    for g in params["groups"]:
        given = params["relations"]["given"].get(g)
        path = Path(root) / paths.relations_csv(suite, g)
        if given is not None:
            out[g] = given
        elif path.exists():
            out[g] = read_relations(path, params.tasks_of(g))
    return out


def read_inputs(params, suite: str, root) -> tuple:
    """What the claims read beside the run records: (sweep records, loss histories, R by group), from disk."""
    from hetmtl.reporting.collect import collect_sweeps

    return collect_sweeps(params, suite, root), loss_histories(params, suite, root), relations_of(params, suite, root)


def claims_table(params, suite: str, root, name: str, records: pd.DataFrame) -> list:
    """The ``claims`` item: every claim of params/claims.yaml with its verdict, in every table format."""
    from hetmtl import files, paths
    from hetmtl.reporting import catalogue
    from hetmtl.reporting.aggregate import scale_note

    table = evaluate(params, suite, records, *read_inputs(params, suite, root))
    columns = DETAILS if name.endswith("_details") else SUMMARY
    cap = (caption(params, suite, scale_note(params, suite)) if columns is SUMMARY else
           "The claims' details (the summary is the claims table): each claim's sentence as the paper states it, "
           "the tables or figures and cells it rests on, the runs read, and its comparisons: their number, how "
           "many it needs, and those significantly for (+) and against (−). " + scale_note(params, suite))
    out = {ext: root / paths.table_file(suite, name, ext) for ext in catalogue.TABLE_FORMATS}
    return [files.write_text(out["md"], to_markdown(table, cap, columns)),
            files.write_text(out["tex"], to_latex(table, cap, columns)),
            files.write_text(out["csv"], to_csv(table)),
            files.write_text(out["html"], to_html(table, cap, name, columns))]
