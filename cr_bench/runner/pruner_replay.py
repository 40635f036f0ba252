"""``cr-bench tune --replay-pruners`` and ``--replay-budgets``: which pruner, and which frames
per trial, a finished study should have used.

Each pruner ``--pruner`` accepts is replayed on the study's recorded evaluations, in many
random orders of its trials: an in-memory Optuna study asks a trial, reports the trial's
recorded values at their steps and asks the pruner, exactly as a tuning worker does
(:class:`cr_bench.runner.tuning.TrialEvaluation`). The base config runs first and to the end, as
in a real study. What a pruner costs is the frames its trials train; what it finds is the
value of the best trial it lets finish.

A trial the study pruned has no values past its pruning point. Where a replayed pruner
would let it go on, its last recorded value is carried forward (an assumption the output
states). The sampler is not replayed: a study run with another pruner would have sampled
other configs from what it saw.

A shorter budget is replayed on the same curves cut at one of their evaluation steps
(:func:`replay_budgets`): the value rule read there ranks the complete trials, which says
whether the configs the study found best were already best there, and the default pruner met
with the cut curves says what the shorter study would cost.
"""

from __future__ import annotations

import dataclasses
import random
import typing
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text, write_csv
from cr_bench.results.tables import markdown_table
from cr_bench.runner.study import counted, make_pruner
from cr_bench.spec.tune import DEFAULT_PRUNER, Pruner, TuneSettings


@dataclass(frozen=True)
class Curve:
    """A recorded trial: its evaluations at every pruning step, and its value."""

    number: int
    values: tuple[float, ...]
    """One value per step of the study (:func:`curves`); carried forward past a pruning point."""
    value: float
    """The recorded value of a finished trial, or the value rule applied to the carried-forward curve."""
    finished: bool
    default: bool


@dataclass(frozen=True)
class Replay:
    """A pruner's mean outcome over many studies replayed."""

    pruner: str
    frames: float
    """Mean frames trained."""
    finished: float
    """Mean trials let finish."""
    best: float
    """Mean value of the best finished trial."""
    shortfall: float
    """Mean of (best trial of the replayed study - best finished trial)."""
    shortfall_p90: float
    """90th percentile of the shortfall."""
    kept_best: float
    """Share of replays in which the best trial finished."""


def curves(study: optuna.Study, value_evals: int) -> tuple[list[int], list[Curve]]:
    """The study's steps and the curve of every complete or pruned trial."""
    trials = [
        t for t in counted(study) if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.intermediate_values
    ]
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise CrBenchError(f"study {study.study_name} has no complete trial to replay pruners on")
    steps = sorted({step for t in trials for step in t.intermediate_values})
    result = []
    for trial in trials:
        values, last = [], float("nan")
        for step in steps:
            last = trial.intermediate_values.get(step, last)
            values.append(last)
        finished = trial.state == TrialState.COMPLETE and trial.value is not None
        value = float(trial.value) if trial.value is not None and finished else float(np.mean(values[-value_evals:]))
        result.append(Curve(trial.number, tuple(values), value, finished, bool(trial.user_attrs.get("default"))))
    return steps, result


def replay(
    settings: TuneSettings, pruner: Pruner, steps: list[int], trials: list[Curve], order_seed: int
) -> tuple[int, list[Curve]]:
    """Frames trained and trials finished when ``pruner`` meets ``trials`` in this order."""
    study = optuna.create_study(
        study_name=f"replay-{order_seed}",  # Hyperband hashes the name into its brackets: fixed, so replays repeat
        direction="maximize",
        pruner=make_pruner(dataclasses.replace(settings, pruner=pruner)),
        sampler=optuna.samplers.RandomSampler(seed=order_seed),
    )
    frames, finished = 0, []
    for curve in trials:
        trial = study.ask()
        for step, value in zip(steps, curve.values, strict=True):
            trial.report(value, step)
            if step != steps[-1] and not curve.default and trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                frames += step
                break
        else:
            study.tell(trial, curve.value)
            frames += steps[-1]
            finished.append(curve)
    return frames, finished


def replay_pruners(
    study: optuna.Study, settings: TuneSettings, orders: int = 100, resample: bool = False
) -> tuple[list[Replay], list[Curve]]:
    """Every pruner on ``orders`` replayed studies: the base config first, then the other
    trials in a random order, or (``resample``) as many drawn with replacement, which asks
    whether a pruner holds on the studies TPE might have sampled, not only on this one."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    steps, trials = curves(study, settings.value_evals)
    default, rest = [c for c in trials if c.default], [c for c in trials if not c.default]
    rng = random.Random(0)
    studies = []
    for _ in range(orders):
        others = [rng.choice(rest) for _ in rest] if resample else rng.sample(rest, len(rest))
        studies.append(default + others)
    best = [max(c.value for c in order) for order in studies]
    results = []
    for pruner in typing.get_args(Pruner):
        runs = [replay(settings, pruner, steps, order, seed) for seed, order in enumerate(studies)]
        found = [max(c.value for c in done) for _, done in runs]
        shortfall = np.subtract(best, found)
        results.append(
            Replay(
                pruner,
                frames=float(np.mean([frames for frames, _ in runs])),
                finished=float(np.mean([len(done) for _, done in runs])),
                best=float(np.mean(found)),
                shortfall=float(np.mean(shortfall)),
                shortfall_p90=float(np.percentile(shortfall, 90)),
                kept_best=float(np.mean(shortfall == 0)),
            )
        )
    return results, trials


def _table(results: list[Replay], used: str | None) -> list[str]:
    """One row per pruner; ``used``: the pruner the study ran with."""
    none = next(r for r in results if r.pruner == "none")

    def name(pruner: str) -> str:
        notes = [note for note, yes in (("default", pruner == DEFAULT_PRUNER), ("this study's", pruner == used)) if yes]
        return f"`{pruner}`" + (f" ({', '.join(notes)})" if notes else "")

    rows = [
        [name(r.pruner), f"{r.frames:,.0f}",
         f"{r.frames / none.frames:.2f}", f"{r.finished:.1f}", f"{r.best:.1f}", f"{r.shortfall:.1f}",
         f"{r.shortfall_p90:.1f}", f"{r.kept_best:.0%}"]
        for r in results
    ]  # fmt: skip
    header = ["pruner", "frames", "vs none", "trials finished", "best found", "shortfall", "shortfall p90", "kept best"]
    return markdown_table(header, rows, "lrrrrrrr")


def write_replay(study: optuna.Study, settings: TuneSettings, orders: int = 100) -> str:
    """Replay every pruner; write pruners.csv and pruners.md in the study's folder; return the markdown."""
    shuffled, trials = replay_pruners(study, settings, orders)
    resampled, _ = replay_pruners(study, settings, orders, resample=True)
    rows = [
        [replay, r.pruner, *(round(x, 3) for x in dataclasses.astuple(r)[1:])]
        for replay, results in (("orders", shuffled), ("resampled", resampled))
        for r in results
    ]
    settings.out_dir.mkdir(parents=True, exist_ok=True)  # a study in a --storage database has no folder yet
    write_csv(settings.out_dir / "pruners.csv", ["replay", *(f.name for f in dataclasses.fields(Replay))], rows)
    carried = sum(1 for c in trials if not c.finished)
    text = "\n".join(
        [
            f"# Pruners replayed on study `{settings.study_name}`",
            "",
            f"Produced by `{settings.command}`.",
            "",
            f"Each pruner met {orders} replayed studies through Optuna's own pruning calls. The base config comes "
            "first and is never pruned, as in a study. *Frames* are those the trials trained; *best found* is the "
            "value of the best trial the pruner let finish; its *shortfall* is how far that falls below the best "
            "trial of the replayed study (mean and 90th percentile), and *kept best* how often it is zero. "
            f"Of the study's {len(trials)} trials, {carried} were pruned in the study: past their pruning point "
            "their last value is carried forward (with several seeds per trial, the value rule is then applied "
            "to the joined seeds' curve, an approximation). Trials are replayed one after another, as one worker "
            "runs them; parallel workers change who competes at each rung. The sampler is not replayed: with "
            "another pruner, TPE would have proposed other configs.",
            "",
            f"## The study's {len(trials)} trials in random orders",
            "",
            *_table(shuffled, study.user_attrs.get("pruner")),
            "",
            f"## Resampled studies: {len(trials) - 1} trials drawn with replacement after the base config",
            "",
            "Whether a pruner holds on the studies TPE might have sampled, not only on this one.",
            "",
            *_table(resampled, study.user_attrs.get("pruner")),
            "",
        ]
    )
    atomic_write_text(settings.out_dir / "pruners.md", text)
    return text


@dataclass(frozen=True)
class BudgetReplay:
    """The study replayed as if its trials had stopped at an earlier evaluation step."""

    frames_per_trial: int
    evals: int
    """Evaluations a trial makes at this budget (the study's steps up to it)."""
    frames: float
    """Mean frames trained by a replayed study at this budget under the default pruner."""
    spearman: float
    """Rank correlation, over the study's complete trials, of the value at this budget with the study's value."""
    pick: int
    """The complete trial with the best value at this budget."""
    pick_value: float
    """That trial's value in the study."""
    best_in_top: bool
    """The study's best trial is among the best ``top`` at this budget."""


def _ranks(values: list[float]) -> np.ndarray:
    """Ranks with ties averaged, as Spearman's correlation takes them."""
    return pd.Series(values).rank().to_numpy()


def replay_budgets(
    study: optuna.Study, settings: TuneSettings, orders: int = 100, top: int = 3
) -> tuple[list[BudgetReplay], int]:
    """Each evaluation step of the study (from the second on) taken as the budget, and the
    number of complete trials the ranks are over. A trial's value at a budget follows the
    study's rule on the evaluations up to it (the last ``value_evals`` of them, or all)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if settings.seeds_per_trial > 1:  # its steps run on through each seed in turn: a cut would mix seeds
        raise CrBenchError("--replay-budgets replays studies of one seed per trial")
    steps, trials = curves(study, settings.value_evals)
    if len(steps) < 2:
        raise CrBenchError(f"study {study.study_name} evaluates its trials once: there is no earlier budget to replay")
    complete = [c for c in trials if c.finished]
    if len(complete) < 2:
        raise CrBenchError(f"study {study.study_name} has fewer than 2 complete trials to rank budgets on")
    study_values = [c.value for c in complete]
    best = complete[int(np.argmax(study_values))]
    default, rest = [c for c in trials if c.default], [c for c in trials if not c.default]
    rng = random.Random(0)
    studies = [default + rng.sample(rest, len(rest)) for _ in range(orders)]
    results = []
    for k in range(2, len(steps) + 1):
        cut = steps[:k]
        budget = dataclasses.replace(
            settings, frames_per_trial=cut[-1], evals_per_trial=k, value_evals=min(k, settings.value_evals), confirm=0
        )
        frames = [
            replay(budget, DEFAULT_PRUNER, cut, [_cut(c, k, settings.value_evals) for c in order], seed)[0]
            for seed, order in enumerate(studies)
        ]
        values = [_cut(c, k, settings.value_evals).value for c in complete]
        ranked = sorted(range(len(complete)), key=lambda i: -values[i])
        spearman = float(np.corrcoef(_ranks(values), _ranks(study_values))[0, 1])
        pick = complete[ranked[0]]
        in_top = best in [complete[i] for i in ranked[:top]]
        results.append(BudgetReplay(cut[-1], k, float(np.mean(frames)), spearman, pick.number, pick.value, in_top))
    return results, len(complete)


def _cut(curve: Curve, k: int, value_evals: int) -> Curve:
    """The curve as if the trial had stopped at its ``k``-th evaluation, valued by the study's rule."""
    values = curve.values[:k]
    return dataclasses.replace(curve, values=values, value=float(np.mean(values[-value_evals:])))


def write_budgets(study: optuna.Study, settings: TuneSettings, orders: int = 100, top: int = 3) -> str:
    """Replay shorter budgets; write budgets.csv and budgets.md in the study's folder; return the markdown."""
    results, complete = replay_budgets(study, settings, orders, top)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    rounded = [[round(x, 3) if isinstance(x, float) else x for x in dataclasses.astuple(r)] for r in results]
    write_csv(settings.out_dir / "budgets.csv", [f.name for f in dataclasses.fields(BudgetReplay)], rounded)
    full = results[-1]
    rows = [
        [f"{r.frames_per_trial:,}", str(r.evals), f"{r.frames:,.0f}", f"{r.frames / full.frames:.2f}",
         f"{r.spearman:.2f}", f"{r.pick} ({r.pick_value:.1f})", "yes" if r.best_in_top else "no"]
        for r in results
    ]  # fmt: skip
    header = ["frames a trial", "evaluations", "frames a study", "vs the study's budget",
              "Spearman", "best trial there (its study value)", f"study's best in its top {top}"]  # fmt: skip
    text = "\n".join(
        [
            f"# Shorter budgets replayed on study `{settings.study_name}`",
            "",
            f"Produced by `{settings.command}`.",
            "",
            "Each row stops every trial of the study at one of its evaluation steps, as if that had been the "
            "budget. *Frames a study* is the mean over "
            f"{orders} replayed orders of the trials, under the default pruner (`{DEFAULT_PRUNER}`, its first rung "
            "at the study's first evaluation). The value at a budget follows the study's rule on the evaluations "
            f"up to it (the mean of the last {settings.value_evals}). *Spearman* ranks the study's {complete} "
            "complete trials by that value against their value in the study; *best trial there* is the one it "
            f"ranks first, with its value in the study (the study's best is {full.pick}, {full.pick_value:.1f}). "
            "Trials the study pruned have no value to compare; they compete in the pruning replay only. "
            "Values at the study's budget are themselves noisy (10-20 validation tracks an evaluation): a "
            "Spearman near 1 is not expected between configs that differ by less than that noise.",
            "",
            *markdown_table(header, rows, "rrrrrrl"),
            "",
        ]
    )
    atomic_write_text(settings.out_dir / "budgets.md", text)
    return text
