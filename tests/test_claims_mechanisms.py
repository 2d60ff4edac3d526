"""The claims' mechanisms that steady toy records cannot tell from their distortions (issue 29):
which comparison decides a claim, and a diverged seed inside a pooled claim."""

from __future__ import annotations

import pandas as pd
import pytest
from test_claims import NOISE, _params, _records, _row

from hetmtl.reporting import claims

SEEDS = [0, 1, 2, 3]


def _comparison(label, diffs):
    return claims.Comparison(label, pd.Series(diffs, index=SEEDS[:len(diffs)]))


@pytest.mark.parametrize("need, verdict, label", [
    (1, claims.SUPPORTED, "for"),
    (2, claims.INCONCLUSIVE, "unclear"),
    (3, claims.CONTRADICTED, "against"),
])
def test_a_claim_is_decided_by_its_kth_comparison_from_the_strongest_for_it(need, verdict, label):
    """Three comparisons, given in an order that is none of the orders by evidence: the
    k-th of (significant for, neither, significant against) decides a claim needing k."""
    comps = [_comparison("unclear", [0.02, -0.01, 0.03, -0.02]),
             _comparison("against", [-0.10, -0.11, -0.12, -0.10]),
             _comparison("for", [0.10, 0.12, 0.11, 0.13])]
    got, deciding = claims.decide(comps, need, 0.05)
    assert (got, deciding.label) == (verdict, label)


def test_the_evidence_order_puts_a_weak_loss_before_a_strong_one():
    """Against the claim, the weakest evidence comes first: with k = 2 of two losses the
    deciding one is the stronger loss (contradicted); with k = 1 the weaker (inconclusive)."""
    weak = _comparison("weak loss", [-0.01, 0.02, -0.03, 0.0])
    strong = _comparison("strong loss", [-0.10, -0.11, -0.12, -0.10])
    assert claims.decide([strong, weak], 1, 0.05)[1].label == "weak loss"
    assert claims.decide([weak, strong], 2, 0.05) == (claims.CONTRADICTED, strong)


def test_a_diverged_seed_in_a_pooled_claim_is_dropped_with_a_note(params):
    """C7 pools the four tables per seed; MTAL's run of seed 1 in Table 2 diverged (NaN): the
    seed leaves the pooled comparison with a note, as in an unpooled claim, never silently."""
    p = _params(params, items=["C7"])

    def acc(g, s, m, seed):
        if m == "mtal" and seed == 1 and g == "related" and s == "no_prior":
            return float("nan")
        if not m.startswith("mtal"):
            return 0.5 + NOISE[seed]
        return 0.6 + NOISE[seed] + NOISE[seed] / 4

    row = _row(claims.evaluate(p, "tiny", _records(p, acc)), "C7", "independent")
    assert row.n == 2 and "seed 1 dropped" in row.note, (row.n, row.note)


def test_an_untested_comparison_sits_between_the_evidence_for_and_against():
    """No test (an empty series: every seed diverged) is neither evidence: a claim needing two
    of (for, untested, against) is decided by the untested one, inconclusive."""
    comps = [_comparison("against", [-0.10, -0.11, -0.12, -0.10]), claims.Comparison("none", pd.Series(dtype=float)),
             _comparison("for", [0.10, 0.12, 0.11, 0.13])]
    assert claims.decide(comps, 2, 0.05) == (claims.INCONCLUSIVE, comps[1])


def test_significance_is_strictly_below_alpha_and_a_zero_effect_is_no_evidence():
    c = _comparison("c", [0.10, 0.12, 0.11, 0.13])
    c.p_adj = 0.05
    assert c.outcome(0.05) == 0
    c.p_adj = 0.0499
    assert c.outcome(0.05) == 1
    zero = _comparison("zero", [0.0, 0.0, 0.0, 0.0])
    zero.p_adj = 0.01
    assert zero.outcome(0.05) == 0


def test_dropped_seeds_are_named_in_the_note_after_what_it_said():
    nan = float("nan")
    assert _comparison("a", [0.1, nan, 0.2, 0.3]).note == "seed 1 dropped: not finite"
    assert _comparison("a", [0.1, nan, nan, 0.3]).note == "seeds 1, 2 dropped: not finite"
    c = claims.Comparison("b", pd.Series([0.1, nan], index=[0, 1]), note="short runs")
    assert c.note == "short runs; seed 1 dropped: not finite" and c.n == 1


def test_a_paired_comparison_cites_the_runs_of_both_sides():
    a = pd.Series([0.6, 0.7], index=[0, 1])
    b = pd.Series([0.5, 0.5, 0.4], index=[0, 1, 2])
    c = claims._paired("x", (a, {"run-a"}), (b, {"run-b"}))
    assert c.runs == {"run-a", "run-b"} and c.diffs.tolist() == pytest.approx([0.1, 0.2])
