"""The base of every error a user can act on.

Such an error's message is one line naming the file, key or path and what to
do; the ``hetmtl`` command prints it as ``error: <message>`` without a traceback
(``hetmtl --debug ...`` shows the traceback) and exits with a non-zero status.
Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error whose message says what failed and what to do."""


__all__ = ["UserError"]
