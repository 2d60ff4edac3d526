"""The method registry: every method declared once, without torch.

Parameter validation (``hetmtl.params``, which the Snakefile and every command
load) reads what it needs of a method here: its parameters, its search space,
whether it is deep, and its cross-field rules; it must not pay torch's import
for that, nor parse the method's source. A spec's ``target`` ("module:Class")
names the class that implements it (``hetmtl.methods.METHODS`` imports it); the
class takes its flags (``deep``, ``joint``, ``uses_prior``) and ``phases`` from here
(:meth:`hetmtl.methods.base.Method.__init_subclass__`). Adding a method is its
module, one entry here, its params/methods.yaml entry and its place in the grid.

A variant class reuses its parent's declarations (the ``MTAL_*`` pieces below)
rather than copying them, and with them the rules of those parameters: a rule
is declared beside the parameters it reads, so every method that declares them
is checked by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# The phases a method's training job runs, in order. PRETRAIN: the columns train
# alone for the first ``pretrain_fraction`` of the epochs (exactly the single_task
# run's first epochs; cross-stitch and NDDR-CNN), then TRAIN: the method itself.
PRETRAIN, TRAIN = "single_task_pretrain", "train"
REGISTRY_PATH = "src/hetmtl/methods/registry.py"  # this file, relative to the project root (errors name it)


@dataclass(frozen=True)
class Rule:
    """A check across a method's parameters: ``holds(entry)`` must be true of every
    params/methods.yaml entry of a method that declares the rule."""
    keys: tuple[str, ...]  # the parameters it reads
    holds: Callable[[dict], bool]
    reason: str  # what the error says when it does not hold


@dataclass(frozen=True)
class BelowEpochs:
    """A parameter counted in epochs that must stay below every run's epochs (the
    suite's, each sweep's and the tune stage's): ``what`` happens after it."""
    key: str
    what: str  # "MTAL's first matching": the error names it


@dataclass(frozen=True)
class Declared:
    """A piece of a declaration: parameters (JSON Schema of each key; ``#/definitions/...``:
    params.schema.yaml's) with the rules and bounds that read them. ``+`` joins two
    pieces (the left one's keys first)."""
    params: dict
    rules: tuple[Rule, ...] = ()
    below_epochs: tuple[BelowEpochs, ...] = ()

    def __add__(self, other: Declared) -> Declared:
        return Declared({**self.params, **other.params}, self.rules + other.rules,
                        self.below_epochs + other.below_epochs)


@dataclass(frozen=True)
class MethodSpec:
    name: str  # the key of params/methods.yaml and of a run (RunId.method)
    target: str  # "module:Class" of the class that implements it
    declared: Declared  # its parameters (each required in params/methods.yaml, no default in code)
    search: dict = field(default_factory=dict)  # the tuning stage's space (README "Tuning"), beside the rate
    deep: bool = True  # trained by the joint SGD loop; False: closed form (``fit_closed_form``)
    joint: bool = True  # tasks interact; False: independent networks (a weighting has no meaning: equal)
    uses_prior: bool = False  # takes the relationship matrix R (protocol section 4)
    phases: tuple[str, ...] = (TRAIN,)
    # A control that follows another run (``follows``): the parameters it must share with that run's method
    follows_equal: tuple[str, ...] = ()

    @property
    def params(self) -> dict:
        return self.declared.params

    @property
    def module(self) -> str:
        return self.target.split(":")[0]


PROBABILITY = {"$ref": "#/definitions/probability"}
POSITIVE_INT = {"$ref": "#/definitions/positive_int"}
# rho is a cosine similarity: within [-1, 1]; up to 1.5 so that "rho > 1:
# nothing is ever shared" stays expressible (the sweep and tests use it)
SIMILARITY = {"type": "number", "minimum": -1, "maximum": 1.5}

# MTAL's merge and schedule (methods/mtal.py), which every reading of MTAL shares.
MTAL_MERGE = Declared(
    {"alpha": PROBABILITY,  # Eq. 5: weight of the lower-indexed task's kernel (delta: of its update)
     "beta": PROBABILITY,  # Eq. 5: weight of the other kernel
     "warmup": {"type": "integer", "minimum": 1},  # epochs before the first matching
     "share_every": POSITIVE_INT},
    rules=(Rule(("alpha", "beta"), lambda v: v["alpha"] + v["beta"] > 0, "alpha + beta must be positive"),),
    # a merge is always followed by training
    below_epochs=(BelowEpochs("warmup", "MTAL's first matching"),))
MTAL_START = Declared({"start": {"type": "string", "enum": ["independent", "common"]}})  # ours: how copies start
RELATION_THRESHOLD = Declared({"relation_threshold": PROBABILITY})  # R_ij >= this counts as related
# The delta reading's comparison (methods/mtal_delta.py; ours)
DELTA_COMPARE = Declared({
    "pairing": {"type": "string", "enum": ["index", "matched"]},  # which kernels are compared
    "project_w0": {"type": "boolean"},  # remove each update's component along its w0
})
DELTA_THRESHOLD = Declared({"threshold": {"type": "string", "enum": ["null", "fraction"]}})  # how it is set
# The columns' single-task start and their units (methods/columns.py)
COLUMNS = Declared({
    "pretrain_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "own_weight": PROBABILITY,  # the units' weight on a task's own column at the start
    "unit_lr_mult": {"type": "number", "exclusiveMinimum": 0},  # the units' rate, a multiple of the base rate
})
# The units' start and their rate (the ranges are ours; Misra et al. and Gao et al.: 0.9 and 100x over a
# fine-tuning rate; ours: 0.1x-100x, so the range holds the 1x that works from scratch on the demo and the
# 10-100x the authors used), beside the base learning rate.
COLUMNS_SEARCH = {"own_weight": {"uniform": [0.5, 1.0]}, "unit_lr_mult": {"log_uniform": [0.1, 100]}}


def _spec(name: str, cls: str, declared: Declared = Declared({}), **kw) -> MethodSpec:
    return MethodSpec(name, f"hetmtl.methods.{name}:{cls}", declared, **kw)


METHOD_SPECS: dict[str, MethodSpec] = {s.name: s for s in (
    # Nothing of its own to tune: the tuning stage searches only the learning rate (params/training.yaml tuning).
    _spec("single_task", "SingleTask", joint=False),
    _spec("hard_sharing", "HardSharing", RELATION_THRESHOLD,  # prior: one trunk per component of R >= this
          search={"relation_threshold": {"uniform": [0.3, 0.7]}},  # around 0.5: "joint training did not hurt"
          uses_prior=True),
    _spec("soft_sharing", "SoftSharing", Declared({"gamma": {"type": "number", "minimum": 0}}),  # distance weight
          search={"gamma": {"log_uniform": [0.0001, 0.01]}},  # ours: a decade either side of 0.001
          uses_prior=True),
    _spec("mtda", "MTDA", Declared({
        "common_dim": POSITIVE_INT,
        "reg": {"type": "number", "exclusiveMinimum": 0},
        "coupling": {"type": "number", "minimum": 0},
        "iterations": POSITIVE_INT,
        "tol": {"type": "number", "minimum": 0},
    }), search={  # the ranges are ours; closed form: no learning rate. The common dimension, ridge, coupling mu
        "common_dim": {"int_uniform": [5, 30]},
        "reg": {"log_uniform": [0.0001, 0.01]},
        "coupling": {"log_uniform": [0.1, 10.0]},
    }, deep=False),
    _spec("cross_stitch", "CrossStitch", COLUMNS, search=COLUMNS_SEARCH, uses_prior=True, phases=(PRETRAIN, TRAIN)),
    _spec("nddr_cnn", "NDDRCNN", COLUMNS + Declared({
        "unit_bn": {"type": "boolean"},
        "unit_bn_lr_mult": {"type": "number", "exclusiveMinimum": 0},  # the units' BatchNorm's rate multiple
    }), search=COLUMNS_SEARCH, uses_prior=True, phases=(PRETRAIN, TRAIN)),
    # The tuning stage's ranges of the thresholds are ours: Fig. 9's 0.1 .. 0.9.
    _spec("mtal", "MTAL", Declared({"rho": SIMILARITY}) + MTAL_MERGE + MTAL_START,  # rho: Eq. 4's threshold
          search={"rho": {"uniform": [0.1, 0.9]}}),
    _spec("mtal_prior", "MTALPrior", Declared({"rho_related": SIMILARITY,  # the paper: 0.4
                                              "rho_unrelated": SIMILARITY})  # the paper: 0.55
          + RELATION_THRESHOLD + MTAL_MERGE + MTAL_START,
          search={"rho_related": {"uniform": [0.1, 0.9]}, "rho_unrelated": {"uniform": [0.1, 0.9]}}, uses_prior=True),
    _spec("mtal_delta", "MTALDelta", MTAL_MERGE + DELTA_COMPARE + DELTA_THRESHOLD + Declared({
        "quantile": PROBABILITY,  # threshold null: the permutation null's quantile
        "fraction": PROBABILITY,  # threshold fraction: the share of candidates passing
    }), search={"quantile": {"uniform": [0.99, 0.9999]}}),  # ours
    _spec("mtal_prior_delta", "MTALPriorDelta", MTAL_MERGE + DELTA_COMPARE + DELTA_THRESHOLD + Declared({
        "quantile_related": PROBABILITY,  # threshold null, R_ij >= relation_threshold
        "quantile_unrelated": PROBABILITY,  # threshold null, elsewhere
        "fraction_related": PROBABILITY,  # threshold fraction, related pairs
        "fraction_unrelated": PROBABILITY,  # threshold fraction, elsewhere
    }) + RELATION_THRESHOLD,
          search={"quantile_related": {"uniform": [0.99, 0.9999]}, "quantile_unrelated": {"uniform": [0.99, 0.9999]}},
          uses_prior=True),
    # The control of the delta reading: the same merge and comparison as the run it follows (project_w0 is
    # unused by its choice, kept equal); ``follows``: the delta method whose counts it matches.
    _spec("mtal_random", "MTALRandom", MTAL_MERGE + DELTA_COMPARE + Declared({"follows": {"type": "string"}}),
          follows_equal=("alpha", "beta", "warmup", "share_every", "pairing", "project_w0")),
)}

# The relations stage (training/relations.py): a pair of tasks trained by ALONE and by
# TOGETHER; R_ij is how much TOGETHER helps (protocol section 4). Its digest reads TOGETHER's parameters.
RELATIONS_ALONE, RELATIONS_TOGETHER = "single_task", "hard_sharing"
