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


def test_at_no_effect_the_power_is_the_tests_size_alpha_in_both_tails():
    """Two-sided: with no effect, each tail rejects alpha / 2 of the time, together alpha."""
    assert power(0.0, 1.0, 8, 0.05) == pytest.approx(0.05)
    assert power(0.0, 1.0, 3, 0.2) == pytest.approx(0.2)
    assert power(5.0, 1.0, 1, 0.05) == 0.0  # one seed: no test, no power


def test_a_large_effect_needs_only_two_seeds_and_no_effect_or_a_nan_none():
    assert seeds_needed(0.5, 0.01, 0.05) == 2  # two seeds: the fewest a paired t-test can use
    assert power(20.0, 1.0, 2, 0.05) == pytest.approx(0.9736, abs=1e-4)  # scipy's nct.cdf: NaN in this far tail
    assert seeds_needed(float("nan"), 0.03, 0.05) is None
    assert seeds_needed(float("nan"), 0.0, 0.05) is None


@pytest.mark.parametrize("sd", [0.03, 0.0])
def test_seeds_needed_are_searched_up_to_max_seeds_inclusive(sd):
    """d = 1 needs 10 seeds (no spread at alpha 0.05: 6): found with exactly that many allowed, None with one less."""
    n = 10 if sd else 6
    assert seeds_needed(0.03, sd, 0.05, max_seeds=n) == n
    assert seeds_needed(0.03, sd, 0.05, max_seeds=n - 1) is None


def test_plan_rows_take_the_power_target_from_claims_yaml_and_default_to_80_percent():
    weak = _comparison("a − b", [0.01, 0.05, 0.03])
    c = _checked([weak], 1, weak)
    at = {p: plan_rows([c], {"alpha": 0.05, "plan": {"power": p}}).iloc[0].seeds_at_effect for p in (0.8, 0.95)}
    assert at[0.95] == seeds_needed(0.03, 0.02, 0.05, 0.95) > at[0.8] == seeds_needed(0.03, 0.02, 0.05, 0.8)
    r = plan_rows([c], {"alpha": 0.05}).iloc[0]  # no plan section: 80% power, no smallest effect
    assert r.seeds_at_effect == at[0.8] and r.seeds_at_min_effect is None and r.min_effect is None


def test_plan_rows_of_a_deterministic_comparison_and_of_a_claim_with_nothing_to_compare():
    fixed = _comparison("a − b", [0.03, 0.03, 0.03], deterministic=True)
    r = plan_rows([_checked([fixed], 1, fixed)], {"alpha": 0.05, "plan": {"min_effect": {"pp": 2.0}}},
                  hours_per_seed=0.5).iloc[0]
    assert r.seeds_at_effect == 2 and r.seeds_at_min_effect == 2 and r.sd == 0.0
    assert r.hours_at_effect == pytest.approx(1.0) and r.hours_at_min_effect == pytest.approx(1.0)
    none = plan_rows([_checked([], 1, None)], {"alpha": 0.05}).iloc[0]
    assert none.deciding == "none" and none.pilot_seeds == 0 and pd.isna(none.holm_alpha) and pd.isna(none.effect)
    assert none.seeds_at_effect is None and none.hours_at_effect is None


def test_zero_effect_without_spread_needs_no_seeds_and_two_seeds_suffice_above_one_half():
    """No effect is nothing to find, spread or not; two seeds of one sign give the sign-flip p = 1/2,
    enough for an alpha above it."""
    assert seeds_needed(0.0, 0.0, 0.05) is None
    assert seeds_needed(0.05, 0.0, 0.6) == 2
    assert seeds_needed(0.05, 0.0, 0.4) == 3  # 2^(1-3) = 0.25 < 0.4 <= 1/2


def test_two_pilot_seeds_give_a_spread_and_a_plan_one_seed_none_even_with_a_floor():
    two = _comparison("a − b", [0.02, 0.04])
    cfg = {"alpha": 0.05, "plan": {"min_effect": {"pp": 2.0}}}
    r = plan_rows([_checked([two], 1, two)], cfg).iloc[0]
    assert r.sd == pytest.approx(0.0141421, rel=1e-5) and r.pilot_seeds == 2
    assert r.seeds_at_effect == seeds_needed(0.03, r.sd, 0.05) and r.seeds_at_min_effect == seeds_needed(0.02, r.sd,
                                                                                                          0.05)
    one = _comparison("a − b", [0.03])
    r1 = plan_rows([_checked([one], 1, one)], cfg).iloc[0]  # a floor, but one seed: no spread to plan from
    assert r1.seeds_at_effect is None and r1.seeds_at_min_effect is None and r1.min_effect == 2.0


def test_the_plan_row_names_its_claim_reading_verdict_and_unit_as_the_tables_cells_show_them():
    from hetmtl.reporting.plan import cells

    weak = _comparison("a − b", [0.01, 0.05, 0.03])
    table = plan_rows([_checked([weak], 1, weak)], {"alpha": 0.05}, hours_per_seed=2.0)
    r = table.iloc[0]
    assert (r.claim, r.reading, r.verdict, r.unit) == ("C1", "–", "inconclusive", "pp")
    assert r.hours_at_effect == pytest.approx(2.0 * r.seeds_at_effect) and r.hours_at_min_effect is None
    assert cells(table).iloc[0].tolist()[:6] == ["C1", "–", "inconclusive", "a − b", "3", "+3.0 pp"]


def test_a_difference_equal_on_every_seed_has_no_spread_and_a_correlation_is_shown_as_it_is():
    from hetmtl.reporting.plan import cells

    same = _comparison("1 − compression", [0.737, 0.737, 0.737], deterministic=True)
    r = plan_rows([_checked([same], 1, same, unit="%")], {"alpha": 0.05}).iloc[0]
    assert r.sd == 0 and r.seeds_at_effect == 2  # not "> 200" from a rounding-sized sd
    assert seeds_needed(0.737, 1e-17, 0.05, deterministic=True) == 2
    rho = _comparison("Spearman", [-0.4, 0.3, 0.07])
    row = plan_rows([_checked([rho], 1, rho, unit="ρ")], {"alpha": 0.05})
    shown = cells(row).iloc[0]
    assert shown["Effect"] == "-0.01 ρ" and shown["SD of differences"] == "0.36"


def test_an_equal_difference_shows_no_spread_where_pandas_std_rounds_and_one_seed_shows_none():
    """0.7 on three seeds: pandas' std gives 1.4e-16, the row shows 0 (the claims' own test reads no
    spread); one pilot seed has no spread at all (NaN), not 0."""
    assert pd.Series([0.7] * 3).std(ddof=1) != 0  # the rounding this protects against
    same = _comparison("a − b", [0.7, 0.7, 0.7])
    assert plan_rows([_checked([same], 1, same)], {"alpha": 0.05}).iloc[0].sd == 0.0
    one = _comparison("a − b", [0.7])
    assert pd.isna(plan_rows([_checked([one], 1, one)], {"alpha": 0.05}).iloc[0].sd)


def test_a_spread_at_the_rounding_floor_is_read_as_none_and_the_floor_scales_with_the_effect():
    """sd <= 1e-12 x max(1, |effect|) is no spread (the sign-flip test: 6 seeds at alpha 0.05); above it the
    t-test's power decides."""
    assert seeds_needed(1.0, 1e-12, 0.05) == 6  # at the floor: none
    assert seeds_needed(0.5, 1e-12, 0.05) == 6  # effect below 1: the floor is 1e-12
    by_power = next((n for n in range(2, 201) if power(0.5, 1.5e-12, n, 0.05) >= 0.8), None)
    assert by_power != 6 and seeds_needed(0.5, 1.5e-12, 0.05) == by_power  # above it: the power's search
    assert seeds_needed(1e6, 1e-7, 0.05) == 6  # the floor grows with the effect (1e-6 here)
