"""hetmtl: a reproducible benchmark of twofold heterogeneous multi-task learning."""

__version__ = "0.1.0"
