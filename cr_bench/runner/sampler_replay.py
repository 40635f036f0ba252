"""``cr-bench tune --replay-samplers``: what running trials in parallel does to a study's quality.

With ``--n-jobs 2`` a worker asks for a trial while the other's is still running, so TPE
samples from one trial less, and with ``constant_liar`` it also treats the running trial as a
bad result and samples away from it. Whether that costs quality cannot be read from one
study; rerunning 50-trial studies many times on CarRacing is out of reach. So the study's
recorded trials become a surrogate objective (:class:`Surrogate`: the distance-weighted mean of
the nearest recorded trials in the space, scaled to [0, 1] per parameter), and many 50-trial
studies are run against it with 1, 2 and 4 simulated workers, the sampler as ``tune`` makes
it (:func:`cr_bench.runner.study.make_sampler`), and random sampling as the floor. Workers are
simulated as equal-length trials finishing in the order they started: with pruning, real
trials end at different times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields, replace
from typing import Any

import numpy as np
import optuna

from cr_bench.io import atomic_write_text, write_csv
from cr_bench.results.tables import markdown_table
from cr_bench.runner.pruner_replay import curves
from cr_bench.runner.study import make_sampler
from cr_bench.runner.tuning import sample
from cr_bench.spec.tune import ParamSpec, TuneSettings, default_params

WORKERS = (1, 2, 4)
"""Simulated parallel workers."""
NEIGHBOURS = 3
"""Recorded trials the surrogate averages."""


class Surrogate:
    """A study's landscape as a function of the parameters: the inverse-distance-weighted mean
    value of the :data:`NEIGHBOURS` nearest recorded trials (exact on a recorded config)."""

    def __init__(self, space: dict[str, ParamSpec], points: Sequence[dict[str, Any]], values: Sequence[float]) -> None:
        self.space = space
        self.points = np.array([self.encode(p) for p in points])
        self.values = np.asarray(values, dtype=np.float64)

    def encode(self, params: dict[str, Any]) -> np.ndarray:
        """Each parameter scaled to [0, 1]: log or linear within its bounds, a choice by its rank."""
        coords = []
        for name, spec in self.space.items():
            value = params[name]
            if spec.type == "categorical":
                choices = sorted(spec.choices or [], key=lambda c: (isinstance(c, str), c))
                coords.append(choices.index(value) / max(1, len(choices) - 1))
            else:
                low, high = float(spec.low or 0), float(spec.high or 0)
                if spec.log:
                    low, high, value = math.log(low), math.log(high), math.log(value)
                coords.append((float(value) - low) / (high - low) if high > low else 0.0)
        return np.array(coords)

    def __call__(self, params: dict[str, Any]) -> float:
        distance = np.linalg.norm(self.points - self.encode(params), axis=1)
        nearest = np.argsort(distance, kind="stable")[:NEIGHBOURS]
        weights = 1.0 / (distance[nearest] + 1e-6)
        return float(np.dot(weights, self.values[nearest]) / weights.sum())


@dataclass(frozen=True)
class SamplerReplay:
    """One sampler and worker count over many simulated studies."""

    sampler: str
    workers: int
    best: float
    """Mean surrogate value of the study's best trial."""
    best_se: float
    """Standard error of that mean."""
    best_p10: float
    """10th percentile of that value (a bad study)."""
    top5: float
    """Mean value of the study's 5 best trials (what a confirmation retrains)."""


def surrogate_of(study: optuna.Study, settings: TuneSettings) -> Surrogate:
    """The surrogate of a finished study: its complete and pruned trials (pruned ones at their
    last value carried forward, :func:`cr_bench.runner.pruner_replay.curves`), over the study's
    space widened to today's (:func:`_widened`), so the simulated studies sample today's space."""
    space = settings.space()
    _, recorded = curves(study, settings.value_evals)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    kept = [trials[c.number] for c in recorded if set(space) <= set(trials[c.number].params)]
    values = [c.value for c in recorded if set(space) <= set(trials[c.number].params)]
    return Surrogate(_widened(space, kept), [t.params for t in kept], values)


def _widened(space: dict[str, ParamSpec], trials: Sequence[optuna.trial.FrozenTrial]) -> dict[str, ParamSpec]:
    """``space`` widened to hold every value the trials recorded (a choice since dropped, a
    bound since narrowed)."""
    widened = {}
    for name, spec in space.items():
        seen = [t.params[name] for t in trials]
        if spec.type == "categorical":
            choices = list(spec.choices or []) + [v for v in dict.fromkeys(seen) if v not in (spec.choices or [])]
            widened[name] = replace(spec, choices=choices)
        else:
            low, high = min([float(spec.low or 0), *seen]), max([float(spec.high or 0), *seen])
            widened[name] = replace(spec, low=low, high=high)
    return widened


def simulate(surrogate: Surrogate, settings: TuneSettings, sampler: str, workers: int, seed: int) -> list[float]:
    """One study of ``settings.trials`` trials against ``surrogate`` with ``workers`` running at
    once (the base config first, as in ``tune``); the values of its trials."""
    space = settings.space()
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed))
    study.enqueue_trial(default_params(space, settings.resolved_base()))
    running: list[tuple[optuna.Trial, dict[str, Any]]] = []
    values: list[float] = []
    asked = 0
    while len(values) < settings.trials:
        while len(running) < workers and asked < settings.trials:
            trial = study.ask()
            running.append((trial, sample(trial, space)))
            asked += 1
        trial, params = running.pop(0)
        values.append(surrogate(params))
        study.tell(trial, values[-1])
    return values


def replay_samplers(study: optuna.Study, settings: TuneSettings, studies: int = 40) -> list[SamplerReplay]:
    """``studies`` simulated studies per sampler (tpe, random) and worker count."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    surrogate = surrogate_of(study, settings)
    results = []
    for sampler in ("tpe", "random"):
        for workers in WORKERS if sampler == "tpe" else (1,):
            runs = [
                sorted(simulate(surrogate, settings, sampler, workers, seed), reverse=True) for seed in range(studies)
            ]
            best = np.array([values[0] for values in runs])
            top5 = float(np.mean([values[:5] for values in runs]))
            se = float(best.std(ddof=1) / np.sqrt(len(best)))
            p10 = float(np.percentile(best, 10))
            results.append(SamplerReplay(sampler, workers, float(best.mean()), se, p10, top5))
    return results


def write_replay(study: optuna.Study, settings: TuneSettings, studies: int = 40) -> str:
    """Replay the samplers; write samplers.csv and samplers.md in the study's folder; return the markdown."""
    results = replay_samplers(study, settings, studies)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(settings.out_dir / "samplers.csv", [f.name for f in fields(SamplerReplay)],
              ([*astuple(r)[:2], *(round(x, 2) for x in astuple(r)[2:])] for r in results))  # fmt: skip
    ceiling = float(surrogate_of(study, settings).values.max())
    rows = [[f"`{r.sampler}`", r.workers, f"{r.best:.1f} ± {r.best_se:.1f}", f"{r.best_p10:.1f}", f"{r.top5:.1f}"]
            for r in results]  # fmt: skip
    text = "\n".join(
        [
            f"# Samplers replayed on study `{settings.study_name}`",
            "",
            f"Produced by `{settings.command}`.",
            "",
            f"{studies} studies of {settings.trials} trials per row, run against a surrogate of this study: the "
            f"inverse-distance-weighted mean of the {NEIGHBOURS} nearest of its recorded trials (pruned ones at "
            f"their last value), each parameter scaled to [0, 1]. Its best recorded value is {ceiling:.1f}. "
            "*workers* trials run at once (the base config first, equal-length trials finishing in the order "
            "they started); TPE is `tune`'s (multivariate, constant liar). *best* is the mean value of a "
            "study's best trial (± its standard error), *best p10* its 10th percentile, *top 5* the mean of a "
            "study's 5 best trials. "
            "The surrogate is noise-free and smoother than CarRacing: read the rows against each other, not as "
            "scores.",
            "",
            *markdown_table(["sampler", "workers", "best", "best p10", "top 5"], rows, "lrrrr"),
            "",
        ]
    )
    atomic_write_text(settings.out_dir / "samplers.md", text)
    return text
