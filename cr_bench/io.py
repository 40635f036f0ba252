"""Atomic file writes: a crash or a kill never leaves a half-written file behind.

Every writer of cr-bench goes through :func:`atomic_path`: it writes a temporary file of its
own beside the target, flushes it to the disk, then renames it over the target (a rename
within one folder is atomic on POSIX), so a reader sees the previous file or the new one,
never a mix, even after a power loss.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> atomic_write_text(folder / "note.txt", "hello\\n")
>>> (folder / "note.txt").read_text()
'hello\\n'
>>> write_csv(folder / "table.csv", ["a", "b"], [[1, 2]])
>>> (folder / "table.csv").read_text().splitlines()
['a,b', '1,2']
>>> sorted(p.name for p in folder.iterdir())
['note.txt', 'table.csv']

A command refused or failing part-way leaves no empty folder of its own behind
(:func:`folders_removed_on_error`).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{16}\.tmp(\.[^.]*)?")
"""The names :func:`temporary_path` makes."""


def temporary_path(path: Path) -> Path:
    """A new, empty file beside ``path`` for one write to go to first, e.g. ``model.zip`` ->
    ``.model.3f2a9c0d1b4e5f67.tmp.zip``: created here (exclusively, with the permissions a new
    file gets), so two writers of the same path never share one.

    Hidden, so that no listing of the folder's files takes it for one; the real suffix stays
    last, so libraries that add a missing suffix (SB3's ``save``) or read the format from it
    (matplotlib's ``savefig``) keep the name as given.
    """
    while True:
        candidate = path.with_name(f".{path.stem}.{secrets.token_hex(8)}.tmp{path.suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # one chance in 2**64: draw another name
            continue
        return candidate


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_path` (one a kill left behind, say).

    >>> is_temporary(Path("run/.model.3f2a9c0d1b4e5f67.tmp.zip")), is_temporary(Path("run/model.zip"))
    (True, False)
    """
    return _TEMPORARY_NAME.fullmatch(path.name) is not None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The written file is synced to the disk before the rename, and the folder after it where
    the OS allows, so that once the block ends the new file survives a power loss whole.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        _sync(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # some systems cannot open or sync a folder
        _sync(path.parent)


def _sync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file (``header``, then ``rows``) atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_dataframe(path: str | Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV, without its index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


@contextlib.contextmanager
def folders_removed_on_error(path: str | Path) -> Iterator[Path]:
    """Yield ``path``; if the block raises, remove the folders on the way to it (``path`` and
    its parents) that did not exist before the block and are still empty, deepest first.

    A refused or failed command so leaves nothing that looks like an output, and never
    touches a folder it did not create or one that holds anything (another process's file).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> try:
    ...     with folders_removed_on_error(root / "results" / "eval") as out:
    ...         out.mkdir(parents=True)
    ...         raise ValueError("refused")
    ... except ValueError:
    ...     pass
    >>> list(root.iterdir())
    []
    """
    path = Path(path)
    created = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        yield path
    except BaseException:
        for folder in created:  # deepest first: one that is not empty keeps its parents
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
