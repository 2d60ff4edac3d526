"""The error every parameter check raises."""

from __future__ import annotations

from hetmtl.errors import UserError


class ParamsError(UserError, ValueError):
    """A parameter file is invalid; the message names file, key and reason."""

