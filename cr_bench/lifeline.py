"""A child process that must not outlive its parent, whatever ends the parent (kill -9 included).

The parent keeps the writing end of a pipe and never writes; the child watches the reading
end. The kernel closes the writing end when the parent exits, so the child's read returns
then. Children of multiprocessing's fork server cannot watch their parent otherwise: their
parent is the fork server (``PR_SET_PDEATHSIG`` and ``os.getppid`` see that one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from multiprocessing.connection import Connection


def on_parent_exit(parent_alive: Connection, action: Callable[[], None]) -> None:
    """In the child: run ``action`` in a daemon thread once the parent's end of the pipe closes."""

    def watch() -> None:
        parent_alive.poll(None)  # the parent never sends: this returns at end of file
        action()

    threading.Thread(target=watch, daemon=True).start()
