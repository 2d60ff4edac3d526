"""How many seeds each claim needs to be decided, and what that costs: the ``plan`` table.

A pilot suite's runs (by default the suite itself) give, for every claim of
params/claims.yaml under every reading, the comparison that decides it (the
claims table's rule) with its observed effect and the standard deviation of
its per-seed differences. From those, the number of seeds a paired two-sided
t-test needs to reach the claim's power (params/claims.yaml ``plan.power``,
default 0.8) at the significance the deciding comparison faces after Holm's
correction within its claim, both at the observed effect and at the smallest
effect of interest (``plan.min_effect``, per unit; ours: 2 accuracy points).

Holm's threshold (ours, an approximation stated in the caption): with K
comparisons in the claim and the deciding one the k-th strongest, Holm
compares it with alpha / (K - k + 1), assuming the k - 1 stronger ones pass
their own stricter thresholds. A difference with no spread over the pilot's
seeds is decided by the exact sign-flip test, p = 2^(1-n) (a quantity the claim
declares deterministic: two seeds).

The power of the two-sided paired t-test at n seeds is that of the noncentral
t distribution with n - 1 degrees of freedom and noncentrality
(effect / sd) * sqrt(n) (scipy.stats.nct).

Cost (``hetmtl plan --suite S --pilot P``): the target suite's grid (Tables
2-6) at n seeds, from its ``hetmtl bench`` estimate (reports/S/bench/
bench_estimate.json, GPU-hours of the grid at its own seeds, scaled per seed;
the sweeps keep their own seeds and are not included).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from hetmtl.reporting.claims import Checked

MAX_SEEDS = 200  # beyond this the plan says "> 200": the effect is too small to decide at any sensible cost
TABLE = "plan"


def power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample (paired) t-test of n differences with this mean and sd."""
    from scipy import stats

    if n < 2:
        return 0.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / sd * math.sqrt(n)
    # the lower tail P(T < -crit) as P(T > crit) at -nc: the same number, where scipy's nct.cdf returns NaN
    # for a far tail (e.g. df 1, nc 28.3; about a third of df 1-199, nc 0-60), which made a large effect's
    # power NaN and its seeds needed too many
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def seeds_needed(effect: float, sd: float, alpha: float, target: float = 0.8, deterministic: bool = False,
                 max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds (>= 2) whose test reaches ``target`` power at ``alpha``; None: more than ``max_seeds``
    or no effect to find."""
    if not np.isfinite(effect) or effect == 0:
        return None
    # no spread (or only float rounding's, as the comparisons' own test reads it): the exact sign-flip test,
    # p = 2^(1-n), decides
    if not np.isfinite(sd) or sd <= 1e-12 * max(1.0, abs(effect)):
        if deterministic:
            return 2
        n = max(2, math.floor(1 - math.log2(alpha)) + 1)
        return n if n <= max_seeds else None
    for n in range(2, max_seeds + 1):
        if power(effect, sd, n, alpha) >= target:
            return n
    return None


def holm_alpha(c: Checked, alpha: float) -> float:
    """The significance the deciding comparison faces in its claim's Holm family (see the module docstring)."""
    return alpha / (len(c.comparisons) - c.need + 1)


def plan_rows(checked: list[Checked], cfg: dict, hours_per_seed: float | None = None) -> pd.DataFrame:
    """One row per checked claim: the deciding comparison's effect and spread, the seeds needed, their cost."""
    plan = cfg.get("plan", {})
    target, min_effect = plan.get("power", 0.8), plan.get("min_effect", {})
    rows = []
    for c in checked:
        d = c.deciding
        n = d.n if d is not None else 0
        effect = d.effect if d is not None else float("nan")
        sd = float(d.diffs.std(ddof=1)) if d is not None and n > 1 else float("nan")
        if n > 1 and bool((d.diffs == d.diffs.iloc[0]).all()):
            sd = 0.0  # equal on every seed, as the claims' own test reads it (not pandas' rounding of the mean)
        a = holm_alpha(c, cfg["alpha"]) if c.comparisons else float("nan")
        det = bool(d is not None and d.deterministic)
        at_obs = seeds_needed(effect, sd, a, target, det) if n > 1 else None
        floor = min_effect.get(c.unit)
        at_min = (seeds_needed(floor / 100.0, sd, a, target, det) if floor is not None and n > 1 else None)
        rows.append({
            "claim": c.claim, "reading": c.reading, "verdict": c.verdict,
            "deciding": d.label if d is not None else "none", "unit": c.unit, "pilot_seeds": n,
            "effect": effect, "sd": sd, "holm_alpha": a,
            "seeds_at_effect": at_obs, "seeds_at_min_effect": at_min, "min_effect": floor,
            "hours_at_effect": hours_per_seed * at_obs if hours_per_seed and at_obs else None,
            "hours_at_min_effect": hours_per_seed * at_min if hours_per_seed and at_min else None,
        })
    return pd.DataFrame(rows)


def grid_hours_per_seed(params, suite: str, root: Path, mfu: str = "0.4") -> tuple[float | None, str]:
    """GPU-hours of one seed of the suite's grid from its committed bench estimate, and where they came from."""
    path = root / "reports" / suite / "bench" / "bench_estimate.json"
    if not path.exists():
        return None, (f"no cost: {path.relative_to(root)} is missing "
                      f"(run `hetmtl bench --suite {suite} --count-only --report`)")
    est = json.loads(path.read_text())["estimate_gpu"]
    at = est["at_mfu"][mfu]
    seeds = len(params.suite(suite)["seeds"])
    hours = at["per_part"]["grid"]["seconds"] / 3600 / seeds
    return hours, (f"cost: the {suite} suite's grid (Tables 2-6, sweeps not included) at n seeds, "
                   f"{hours:.2f} GPU-hours per seed on {est['gpu']} at {float(mfu):.0%} MFU "
                   f"({path.relative_to(root)}, `hetmtl bench --suite {suite} --count-only --report`)")


def _seeds(n) -> str:
    return f"> {MAX_SEEDS}" if n is None or pd.isna(n) else str(int(n))


def _scale(unit: str) -> float:
    """As the claims table shows a unit: fractions and accuracies x100 (% and pp), a correlation as it is."""
    return 1.0 if unit == "ρ" else 100.0


def _points(value: float, unit: str) -> str:
    return "–" if pd.isna(value) else f"{_scale(unit) * value:+.{2 if unit == 'ρ' else 1}f} {unit}"


def cells(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in table.itertuples():
        rows.append([r.claim, r.reading, r.verdict, r.deciding, str(r.pilot_seeds), _points(r.effect, r.unit),
                     "–" if pd.isna(r.sd) else f"{_scale(r.unit) * r.sd:.{2 if r.unit == 'ρ' else 1}f}",
                     f"{r.holm_alpha:.3g}",
                     _seeds(r.seeds_at_effect) if r.pilot_seeds > 1 else "n/a",
                     (_seeds(r.seeds_at_min_effect) if r.min_effect is not None and not pd.isna(r.min_effect)
                      and r.pilot_seeds > 1 else "n/a"),
                     "–" if r.hours_at_effect is None or pd.isna(r.hours_at_effect) else f"{r.hours_at_effect:.0f}",
                     "–" if r.hours_at_min_effect is None or pd.isna(r.hours_at_min_effect)
                     else f"{r.hours_at_min_effect:.0f}"])
    return pd.DataFrame(rows, columns=["Claim", "Reading", "Verdict now", "Deciding comparison", "Pilot seeds",
                                       "Effect", "SD of differences", "Holm alpha", "Seeds at effect",
                                       "Seeds at min. effect", "GPU-h at effect", "GPU-h at min. effect"])


def caption(cfg: dict, pilot: str, target: str, cost_note: str) -> str:
    plan = cfg.get("plan", {})
    floors = ", ".join(f"{v:g} {u}" for u, v in plan.get("min_effect", {}).items()) or "none"
    return (f"Plan (ours): how many seeds each claim of params/claims.yaml needs on the {target} suite, from the "
            f"{pilot} suite's runs as pilot. Per claim and reading, the deciding comparison of the claims table: "
            "its observed effect and the standard deviation of its per-seed differences; the seeds a two-sided "
            f"paired t-test needs for {plan.get('power', 0.8):.0%} power at Holm's threshold for that comparison "
            "(alpha / (K - k + 1) with K comparisons in the claim and the deciding one the k-th strongest, the "
            "stronger ones assumed to pass), at the observed effect and at the smallest effect of interest "
            f"(params/claims.yaml plan.min_effect: {floors}); no spread: the exact sign-flip test. The pilot's "
            f"spread stands in for the target's: stand-in variances are not the real data's. {cost_note}")


def write(suite: str, root: Path, table: pd.DataFrame, cap: str, name: str = TABLE) -> list[Path]:
    from hetmtl import files, paths
    from hetmtl.reporting.tables import _html, _latex, _markdown

    text = cells(table)
    bold = pd.DataFrame(False, index=text.index, columns=text.columns)
    out = {ext: root / paths.table_file(suite, name, ext) for ext in ("md", "tex", "csv", "html")}
    return [files.write_text(out["md"], _markdown(text.map(lambda s: s.replace("|", "\\|")), bold, cap)),
            files.write_text(out["tex"], _latex(text, bold, cap)),
            files.write_text(out["csv"], table.to_csv(index=False, float_format="%.6f")),
            files.write_text(out["html"], _html(text, bold, cap, name))]


def pilot_checked(params, pilot: str, root: Path) -> list[Checked]:
    """The pilot suite's claims, checked from its receipts (as the claims table does)."""
    from hetmtl.reporting.claims import check, read_inputs
    from hetmtl.reporting.collect import check_current, collect

    check_current(params, pilot, root)
    return check(params, pilot, collect(params, pilot, root), *read_inputs(params, pilot, root))


def plan(params, suite: str, root: Path, pilot: str | None = None) -> list[Path]:
    """``hetmtl plan``: the plan of ``suite`` from ``pilot``'s runs (default: the suite's own), with its cost."""
    pilot = pilot or suite
    hours, note = grid_hours_per_seed(params, suite, root)
    table = plan_rows(pilot_checked(params, pilot, root), params["claims"], hours)
    return write(suite, root, table, caption(params["claims"], pilot, suite, note))


def plan_table(params, suite: str, root: Path, name: str, records: pd.DataFrame) -> list[Path]:
    """The catalogue's ``plan`` item: the suite as its own pilot, without cost (the bench estimate of a suite is
    not one of its jobs' inputs; ``hetmtl plan --suite S --pilot P`` adds it)."""
    from hetmtl.reporting.claims import check, read_inputs

    table = plan_rows(check(params, suite, records, *read_inputs(params, suite, root)), params["claims"])
    note = f"Cost: `hetmtl plan --suite paper --pilot {suite}` gives the paper suite's GPU-hours at these seeds."
    return write(suite, root, table, caption(params["claims"], suite, suite, note), name)
