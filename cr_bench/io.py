"""Atomic file writes: a crash or a kill never leaves a half-written file behind.

Every writer of cr-bench goes through :func:`atomic_path`: it writes beside the target,
then renames over it (a rename within one folder is atomic on POSIX), so a reader sees the
previous file or the new one, never a mix.

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
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def temporary_path(path: Path) -> Path:
    """The file beside ``path`` that a write goes to first: ``model.zip`` -> ``model.tmp.zip``.

    The real suffix stays last, so libraries that add a missing suffix (SB3's ``save``) keep
    the name as given.

    >>> temporary_path(Path("run/model.zip"))
    PosixPath('run/model.tmp.zip')
    """
    return path.with_name(f"{path.stem}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


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
