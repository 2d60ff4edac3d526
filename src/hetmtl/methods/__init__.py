"""Methods of the comparison, one module each, found through ``METHODS``."""

from hetmtl.methods.base import Method, TaskInfo
from hetmtl.methods.hard_sharing import HardSharing
from hetmtl.methods.mtal import MTAL
from hetmtl.methods.single_task import SingleTask

METHODS: dict[str, type[Method]] = {
    "single_task": SingleTask,
    "hard_sharing": HardSharing,
    "mtal": MTAL,
}

__all__ = ["METHODS", "Method", "TaskInfo"]
