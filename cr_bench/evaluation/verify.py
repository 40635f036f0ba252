"""``cr-bench verify``: re-evaluate a published model and check its published mean.

On the machine that published it, an evaluation replays bit for bit. On another CPU of the
same kind, floating-point rounding differs (SIMD kernels, thread counts) and a 1000-frame
episode amplifies it, so single tracks replay differently and only the mean is reproducible,
within its sampling noise. ``verify`` plays the published tracks (or a run of them) with the
published settings, writes nothing, and passes when the new mean lies within the published
mean's 95% bootstrap CI on the same tracks, widened by a margin on each side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cr_bench.agents.models import load_model, set_torch_threads
from cr_bench.agents.rundir import RunDir
from cr_bench.errors import CrBenchError
from cr_bench.evaluation.episodes import RETURN_DECIMALS, EpisodeResult, evaluate
from cr_bench.results.publish import read_published
from cr_bench.results.stats import episodes_ci
from cr_bench.spec.commands import VerifyArgs
from cr_bench.spec.run import EvalConfig, check_held_out

DEFAULT_MARGIN = VerifyArgs.margin
"""Return points added to each side of the published 95% CI (``cr-bench verify --margin``)."""


@dataclass(frozen=True)
class Verification:
    """A re-evaluation next to the published episodes on the same tracks."""

    folder: Path
    results: list[EpisodeResult]
    """The new episodes, in track order."""
    published: np.ndarray
    """Published returns on the same tracks, shape ``(n_episodes,)``."""
    ci: tuple[float, float]
    """95% bootstrap CI of the published mean on these tracks."""
    margin: float

    @property
    def new_mean(self) -> float:
        return float(np.mean([r.true_return for r in self.results]))

    @property
    def published_mean(self) -> float:
        return float(self.published.mean())

    @property
    def bounds(self) -> tuple[float, float]:
        return self.ci[0] - self.margin, self.ci[1] + self.margin

    @property
    def passed(self) -> bool:
        low, high = self.bounds
        return low <= self.new_mean <= high

    @property
    def identical(self) -> int:
        """Episodes whose return, as written to episodes.csv, equals the published one."""
        new = np.round([r.true_return for r in self.results], RETURN_DECIMALS)
        return int((new == self.published).sum())

    def report(self) -> str:
        """The figures and a last line that says whether the published mean is reproduced."""
        low, high = self.bounds
        tracks = f"{len(self.results)} tracks ({self.results[0].track_seed}..{self.results[-1].track_seed})"
        verdict = "verified" if self.passed else "NOT verified"
        where = "within" if self.passed else "outside"
        return "\n".join(
            [
                f"published: mean {self.published_mean:.1f}, 95% CI [{self.ci[0]:.1f}, {self.ci[1]:.1f}] on {tracks}",
                f"new:       mean {self.new_mean:.1f}; {self.identical} of {len(self.results)} episodes replayed "
                "exactly (all of them on the publishing machine)",
                f"{verdict}: {self.folder}: the new mean {self.new_mean:.1f} is {where} the published 95% CI "
                f"widened by {self.margin:g} points, [{low:.1f}, {high:.1f}]",
            ]
        )


def verify(
    folder: str | Path,
    episodes: int | None = None,
    track_seed_start: int | None = None,
    margin: float = DEFAULT_MARGIN,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    log: Callable[[str], None] = print,
) -> Verification:
    """Re-evaluate the published model in ``folder`` on ``episodes`` of its published tracks.

    :param episodes: how many tracks (default: every published track from the start).
    :param track_seed_start: the first track (default: the first published one); the tracks
        must lie within the published ones.
    :param margin: return points added to each side of the published 95% CI.
    :raises CrBenchError: if ``folder`` is not an intact published folder or the tracks
        are not published ones.
    """
    if margin < 0:
        raise CrBenchError(f"--margin must be >= 0, got {margin}")
    run = RunDir(folder)
    config = run.read_config()
    record, published = read_published(run.path)
    first, last = (int(seed) for seed in record["track_seeds"])
    start = first if track_seed_start is None else track_seed_start
    count = last - start + 1 if episodes is None else episodes
    if not first <= start <= start + count - 1 <= last:
        raise CrBenchError(
            f"{run.path} was published on tracks {first}..{last}; "
            "--track-seed-start and --episodes must choose tracks among them"
        )
    check_held_out(config.training_seeds, range(start, start + count), f"verifying {run.path}")
    on_tracks = published.set_index("track_seed").loc[range(start, start + count), "return"]
    returns = on_tracks.to_numpy(dtype=np.float64)
    model = load_model(config, str(run.require_model()))
    set_torch_threads(int(record["torch_threads"]))
    log(f"verifying {run.path} on {record['backend']} tracks {start}..{start + count - 1}, as published")
    settings = EvalConfig(
        episodes=count,
        track_seed_start=start,
        deterministic=bool(record["deterministic"]),
        backend=record["backend"],
        n_envs=int(record["n_envs"]),
    )
    results = evaluate(model, config.env, settings, on_episode=on_episode)
    ci = episodes_ci(returns, lambda sample: float(np.mean(sample)))
    return Verification(run.path, results, returns, ci, margin)
