"""Run cr-bench with a signal raised at an exact point: the N-th call of a chosen function.

    python -m tests.fault_injection --signal KILL --at cr_bench.agents.rundir:RunDir.write_progress \\
        --call 2 --after -- train ppo --out runs/x

wraps ``RunDir.write_progress`` so that, right after its second call returns, the process
sends itself SIGKILL (as ``kill -9`` would), then runs ``cr-bench train ppo --out runs/x``.
Without ``--after`` the signal comes just before the call. A fault point placed this way
is exact, where waiting a while and then signalling from outside is not.

The patch lives in this process only: worker processes (``compare --workers``, env
subprocesses) run unpatched code.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
from typing import Any


def inject(target: str, signum: int, call: int = 1, after: bool = False) -> None:
    """Make this process send itself ``signum`` at the ``call``-th call of ``target``.

    :param target: ``module:qualname``, e.g. ``stable_baselines3.common.vec_env:DummyVecEnv.reset``.
    :param after: signal once the call has returned, instead of just before it.
    """
    module_name, _, qualname = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call and not after:
            os.kill(os.getpid(), signum)
        result = original(*args, **kwargs)
        if calls == call and after:
            os.kill(os.getpid(), signum)
        return result

    setattr(owner, name, wrapper)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", required=True, help="signal name without SIG: INT, KILL, TERM")
    parser.add_argument("--at", required=True, help="module:qualname of the function to fault")
    parser.add_argument("--call", type=int, default=1, help="which call (1 = the first)")
    parser.add_argument("--after", action="store_true", help="signal after the call returns")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="-- then the cr-bench arguments")
    args = parser.parse_args(argv)
    inject(args.at, signal.Signals[f"SIG{args.signal}"], args.call, args.after)
    from cr_bench.cli import main as cli_main

    cli_args = args.cli_args[1:] if args.cli_args[:1] == ["--"] else args.cli_args
    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
