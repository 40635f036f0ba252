"""The one exception type for user errors: the CLI prints its message on one line."""

from __future__ import annotations

import re
from pathlib import Path

_OURS = tuple(str(Path(__file__).resolve().parents[1] / package) for package in ("cr_bench", "custom_policies"))


class CrBenchError(Exception):
    """Bad input from the user (flags, YAML, run directories); never a bug of ours."""


def raised_by_library(error: BaseException) -> bool:
    """Whether ``error`` was raised inside a library (SB3, torch, numpy...), not by our own code.

    SB3 rejects a bad algorithm argument, and torch a diverged policy (NaN parameters), by
    raising ValueError, TypeError or AssertionError from their own frames: the input is at
    fault. The same exception raised by cr-bench or custom_policies code is a bug of ours and
    must surface with its traceback, not pass for bad input.
    """
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    return not str(Path(frame.tb_frame.f_code.co_filename).resolve()).startswith(_OURS)


_PASSWORD_IN_URL = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (a storage URL's
    password is printed, logged and saved nowhere).

    >>> mask_secrets("cannot open postgresql+psycopg2://tune:s3cret@db:5432/optuna")
    'cannot open postgresql+psycopg2://tune:***@db:5432/optuna'
    """
    return _PASSWORD_IN_URL.sub(r"\1***\3", text)
