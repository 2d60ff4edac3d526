"""The plan table: seeds needed per claim at the claim's Holm threshold, and their cost."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hetmtl.reporting.claims import Checked, Comparison
from hetmtl.reporting.plan import grid_hours_per_seed, holm_alpha, plan_rows, power, seeds_needed


@pytest.mark.parametrize(("d", "n"), [(1.0, 10), (0.5, 34), (0.8, 15)])
def test_seeds_needed_match_the_textbook_sample_sizes_of_a_paired_t_test(d, n):
    # G*Power / Cohen: one-sample two-sided t-test, alpha 0.05, power 0.8: d = 1 -> 10, d = 0.5 -> 34, d = 0.8 -> 15
    assert seeds_needed(d * 0.03, 0.03, 0.05) == n  # only effect / sd matters, in any unit
    assert power(d, 1.0, n, 0.05) >= 0.8 > power(d, 1.0, n - 1, 0.05)


def test_a_stricter_threshold_or_a_smaller_effect_needs_more_seeds():
    base = seeds_needed(0.02, 0.03, 0.05)
    assert seeds_needed(0.02, 0.03, 0.01) > base
    assert seeds_needed(0.01, 0.03, 0.05) > base
    assert seeds_needed(-0.02, 0.03, 0.05) == base  # either direction decides a claim
    assert seeds_needed(0.0, 0.03, 0.05) is None
    assert seeds_needed(1e-4, 0.03, 0.05) is None  # beyond MAX_SEEDS


def test_no_spread_is_decided_by_the_sign_flip_test():
    assert seeds_needed(0.05, 0.0, 0.05) == 6  # 2^(1-6) = 0.031 < 0.05 <= 2^(1-5)
    assert seeds_needed(0.05, 0.0, 0.05 / 4) == 8  # 2^-7 = 0.0078 < 0.0125 <= 2^-6
    assert seeds_needed(0.05, 0.0, 0.05, deterministic=True) == 2


def _comparison(label, diffs, **kw):
    return Comparison(label, pd.Series(diffs, index=range(len(diffs))), **kw)


def _checked(comps, need, deciding, unit="pp"):
    return Checked("C1", "–", [], comps, need, unit, "inconclusive", deciding)


def test_the_deciding_comparison_faces_holms_threshold_of_its_rank():
    comps = [_comparison(f"c{i}", [0.01, 0.02, 0.03]) for i in range(10)]
    assert holm_alpha(_checked(comps, 6, comps[0]), 0.05) == pytest.approx(0.05 / 5)
    assert holm_alpha(_checked(comps, 10, comps[0]), 0.05) == pytest.approx(0.05)  # `all`: the last, at alpha
    assert holm_alpha(_checked(comps, 1, comps[0]), 0.05) == pytest.approx(0.005)  # one needed: the first, alpha/K


def test_plan_rows_read_the_deciding_comparison_and_scale_the_cost_by_seeds():
    weak = _comparison("a − b", [0.01, 0.05, 0.03])  # mean 0.03, sd 0.02
    strong = _comparison("a − c", [0.10, 0.11, 0.12])
    c = _checked([strong, weak], 2, weak)
    row = plan_rows([c], {"alpha": 0.05, "plan": {"power": 0.8, "min_effect": {"pp": 2.0}}}, hours_per_seed=1.5)
    r = row.iloc[0]
    assert r.deciding == "a − b" and r.pilot_seeds == 3
    assert r.effect == pytest.approx(0.03) and r.sd == pytest.approx(0.02)
    assert r.holm_alpha == pytest.approx(0.05)  # the 2nd of 2: alpha / 1
    assert r.seeds_at_effect == seeds_needed(0.03, 0.02, 0.05)
    assert r.seeds_at_min_effect == seeds_needed(0.02, 0.02, 0.05) > r.seeds_at_effect
    assert r.hours_at_effect == pytest.approx(1.5 * r.seeds_at_effect)


def test_one_pilot_seed_plans_nothing_and_a_unit_without_a_floor_has_no_min_effect():
    one = _comparison("a − b", [0.03])
    c = _checked([one], 1, one, unit="%")
    r = plan_rows([c], {"alpha": 0.05, "plan": {"min_effect": {"pp": 2.0}}}).iloc[0]
    assert r.seeds_at_effect is None and r.seeds_at_min_effect is None and r.min_effect is None


def test_the_cost_per_seed_is_the_grid_part_of_the_bench_estimate_over_the_suites_seeds(tmp_path):
    class P:
        def suite(self, name):
            return {"seeds": [0, 1, 2, 3, 4]}

    assert grid_hours_per_seed(P(), "paper", tmp_path)[0] is None  # no estimate: no cost, and the note says why
    folder = tmp_path / "reports" / "paper" / "bench"
    folder.mkdir(parents=True)
    est = {"gpu": "H100 SXM", "at_mfu": {"0.4": {"per_part": {"grid": {"seconds": 5 * 3600 * 2.0},
                                                              "sweep rho": {"seconds": 99999.0}}}}}
    (folder / "bench_estimate.json").write_text(json.dumps({"estimate_gpu": est}))
    hours, note = grid_hours_per_seed(P(), "paper", tmp_path)
    assert hours == pytest.approx(2.0) and "2.00 GPU-hours per seed" in note
