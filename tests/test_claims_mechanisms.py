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


def test_no_test_and_no_effect_are_alike_neither_evidence_in_the_order():
    """A comparison without a test (every seed diverged) and one with a zero effect are both
    neither for nor against: they tie in the evidence order, whichever comes first stays first."""
    untested = claims.Comparison("untested", pd.Series(dtype=float))
    zero = _comparison("zero", [0.0, 0.0, 0.0, 0.0])
    zero.p_adj = 1.0
    for given in ([untested, zero], [zero, untested]):
        assert [c.label for c in sorted(given, key=claims.order_key)] == [c.label for c in given]


def test_a_comparison_without_a_test_ranks_as_p_one_among_those_of_its_sign():
    """One seed, positive: no test, so it counts as p = 1: after a tested gain of p 0.3, tied
    with a tested gain of p 1 (the given order stands)."""
    one = claims.Comparison("one seed", pd.Series([0.05], index=[0]))
    weak = _comparison("weak", [0.02, -0.01, 0.03, 0.01])
    weak.p_adj = 0.3
    tied = _comparison("tied", [0.02, -0.02, 0.03, -0.01])
    tied.p_adj = 1.0
    assert [c.label for c in sorted([one, weak], key=claims.order_key)] == ["weak", "one seed"]
    for given in ([one, tied], [tied, one]):
        assert [c.label for c in sorted(given, key=claims.order_key)] == [c.label for c in given]


def _claim(params, spec):
    """The project's params with one claim of ours, ``CX`` (a `beats` claim), alone."""
    p = _params(params, items=[])
    p.data["claims"]["items"] = {"CX": dict({"statement": "test", "kind": "beats", "quantifier": "all"}, **spec)}
    return p


def _checked(p, acc=None):
    """The claim's check under the first reading (independent start)."""
    return next(c for c in claims.check(p, "tiny", _records(p, acc)) if c.claim == "CX")


@pytest.mark.parametrize("spec, labels", [
    # `others` on the better side leaves out every method named worse (never worse against worse)
    ({"tables": ["table3"], "better": "others", "worse": ["single_task", "mtda"]},
     [f"table3: {a} − {b}" for a in ["hard_sharing", "cross_stitch", "nddr_cnn", "mtal"]
      for b in ["single_task", "mtda"]]),
    # `others` on the worse side leaves out every method named better
    ({"tables": ["table3"], "better": ["mtal", "hard_sharing"], "worse": "others"},
     [f"table3: {a} − {b}" for a in ["mtal", "hard_sharing"]
      for b in ["single_task", "mtda", "cross_stitch", "nddr_cnn"]]),
])
def test_a_claims_others_side_leaves_out_the_methods_named_on_its_other_side(params, spec, labels):
    c = _checked(_claim(params, spec))
    assert [x.label for x in c.comparisons] == labels and c.unit == "pp"
    shown = dict.fromkeys(lab.split(": ")[1].split(" − ")[i] for i in (0, 1) for lab in labels)
    assert c.rests_on == [f"table3[Average: {', '.join(shown)}]"]


@pytest.mark.parametrize("spec, labels", [
    # better = others: one pooled comparison per method of `others` (each in every table)
    ({"better": "others", "worse": ["mtal_prior", "mtal"]},
     [f"mean of table2, table3: {a} − mtal_prior/mtal"
      for a in ["single_task", "mtda", "hard_sharing", "cross_stitch", "nddr_cnn"]]),
    # one pooled comparison per worse method, the better side named per table
    ({"better": ["mtal", "mtal_prior"], "worse": ["single_task"]},
     ["mean of table2, table3: mtal_prior/mtal − single_task"]),
    # a method not in every table has no pooled mean; those after it still have theirs
    ({"better": ["hard_sharing"], "worse": ["mtal_prior", "single_task"]},
     ["mean of table2, table3: hard_sharing − single_task"]),
])
def test_a_pooled_claim_compares_each_method_of_every_table_on_its_mean(params, spec, labels):
    c = _checked(_claim(params, dict(spec, tables=["table2", "table3"], pool=True)))
    assert [x.label for x in c.comparisons] == labels and c.unit == "pp"


def test_a_diverged_seed_on_the_worse_side_of_a_pooled_claim_is_dropped_with_a_note(params):
    """C7 pools the four tables per seed; hard sharing's run of seed 1 in Table 3 diverged:
    its pooled mean for seed 1 is NaN, and the seed leaves that comparison with a note."""
    p = _params(params, items=["C7"])

    def acc(g, s, m, seed):
        if m == "hard_sharing" and seed == 1 and g == "related" and s == "no_prior":
            return float("nan")
        return 0.5 + NOISE[seed] + (0.1 if m.startswith("mtal") else 0.0)

    c = next(c for c in claims.check(p, "tiny", _records(p, acc)) if c.claim == "C7")
    hard = next(x for x in c.comparisons if x.label.endswith("− hard_sharing"))
    assert hard.n == 2 and "seed 1 dropped" in hard.note, (hard.n, hard.note)
