"""Methods of the comparison, one module each, found through ``METHODS``."""

from hetmtl.methods.base import Method, TaskInfo
from hetmtl.methods.cross_stitch import CrossStitch
from hetmtl.methods.hard_sharing import HardSharing
from hetmtl.methods.mtal import MTAL
from hetmtl.methods.mtal_delta import MTALDelta
from hetmtl.methods.mtal_prior import MTALPrior
from hetmtl.methods.mtal_prior_delta import MTALPriorDelta
from hetmtl.methods.mtal_random import MTALRandom
from hetmtl.methods.mtda import MTDA
from hetmtl.methods.nddr_cnn import NDDRCNN
from hetmtl.methods.single_task import SingleTask
from hetmtl.methods.soft_sharing import SoftSharing

METHODS: dict[str, type[Method]] = {
    "single_task": SingleTask,
    "hard_sharing": HardSharing,
    "soft_sharing": SoftSharing,
    "mtda": MTDA,
    "cross_stitch": CrossStitch,
    "nddr_cnn": NDDRCNN,
    "mtal": MTAL,
    "mtal_prior": MTALPrior,
    "mtal_delta": MTALDelta,
    "mtal_prior_delta": MTALPriorDelta,
    "mtal_random": MTALRandom,
}

__all__ = ["METHODS", "Method", "TaskInfo"]
