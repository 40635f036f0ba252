"""What a tuning study writes: trials.csv, best.yaml, importances.csv, summary.md, history.png."""

from __future__ import annotations

import os
import platform

import optuna
from optuna.trial import FrozenTrial, TrialState

from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text, write_csv
from cr_bench.results.plots import plot_optimization_history
from cr_bench.results.tables import markdown_table
from cr_bench.runner.study import FINISHED, counted
from cr_bench.spec.loader import write_yaml
from cr_bench.spec.run import VALIDATION_TRACK_START
from cr_bench.spec.tune import TuneSettings


def check_some_trial_ran(study: optuna.Study) -> None:
    """A study whose finished trials all failed is an error, with the first reasons."""
    trials = [t for t in counted(study) if t.state in FINISHED]
    if trials and all(t.state == TrialState.FAIL for t in trials):
        reasons = list(dict.fromkeys(t.user_attrs.get("error", "unknown") for t in trials))[:3]
        raise CrBenchError(f"all {len(trials)} trials failed; first errors: {' | '.join(reasons)}")


def write_outputs(study: optuna.Study, settings: TuneSettings) -> None:
    """trials.csv, best.yaml, summary.md, importances.csv and history.png in ``settings.out_dir``."""
    out = settings.out_dir
    out.mkdir(parents=True, exist_ok=True)
    trials = counted(study)
    names = sorted({name for t in trials for name in t.params})
    write_csv(
        out / "trials.csv",
        ["number", "state", "value", *names, "frames", "wall_seconds", "default"],
        (
            [t.number, t.state.name, "" if t.value is None else round(t.value, 3)]
            + [t.params.get(name, "") for name in names]
            + [
                t.user_attrs.get("frames", ""),
                t.user_attrs.get("wall_seconds", ""),
                bool(t.user_attrs.get("default")),
            ]
            for t in trials
        ),
    )
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0.0))
    if complete:
        best = complete[0]
        config = dict(best.user_attrs["config"])
        config.pop("frames", None)  # the budget is the user's choice when training the best config
        write_yaml(out / "best.yaml", config)
    importances = _importances(study)
    if importances:
        write_csv(out / "importances.csv", ["parameter", "importance"], importances.items())
    atomic_write_text(out / "summary.md", _summary(settings, trials, complete, importances))
    if len(complete) >= 1:
        plot_optimization_history(study, out / "history.png")


def _wall_hours(trials: list[FrozenTrial]) -> float:
    """Wall hours during which some trial ran: the union of the trials' spans, so workers
    that overlap count once and days between sessions not at all."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials if t.datetime_start and t.datetime_complete)
    total, end = 0.0, None
    for start, complete in spans:
        if end is None or start > end:
            total += (complete - start).total_seconds()
            end = complete
        elif complete > end:
            total += (complete - end).total_seconds()
            end = complete
    return total / 3600


def _summary(
    settings: TuneSettings, trials: list[FrozenTrial], complete: list[FrozenTrial], importances: dict[str, float]
) -> str:
    states = {state.name: sum(1 for t in trials if t.state == state) for state in FINISHED}
    frames = sum(int(t.user_attrs.get("frames", 0)) for t in trials)
    lines = [
        f"# Tuning {settings.agent}: study `{settings.study_name}`",
        "",
        f"Produced by `{settings.command}`.",
        "",
        f"{len(trials)} trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed; "
        f"{frames:,} env frames in {_wall_hours(trials):.2f} wall hours on {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}). "
        f"Each trial trains up to {settings.frames_per_trial:,} env frames per seed on {settings.seeds_per_trial} "
        f"seed(s) with {settings.pruner} pruning and the {settings.sampler} sampler. It is evaluated "
        f"{settings.evals_per_trial} times on validation tracks (seeds {VALIDATION_TRACK_START:,}+, "
        f"{settings.eval_backend}): {settings.eval_episodes} tracks at each pruning point, "
        f"{settings.final_eval_episodes} at the end. Its value is the mean raw return of its last "
        f"{settings.value_evals} evaluations.",
        "",
    ]
    default = next((t for t in trials if t.user_attrs.get("default") and t.state == TrialState.COMPLETE), None)
    if default is not None:
        lines += [f"The base config (trial {default.number}) scored {default.value:.1f}.", ""]
    if complete:
        names = sorted(complete[0].params)
        rows = [[t.number, f"{t.value:.1f}", *(t.params.get(n, "") for n in names)] for t in complete[:5]]
        lines += ["## Best trials", "", *markdown_table(["trial", "value", *names], rows, "rr" + "l" * len(names))]
        lines += ["", f"`best.yaml` holds trial {complete[0].number}'s config: `cr-bench train {settings.agent} "
                  f"--config {settings.out_dir / 'best.yaml'} --frames N`.", ""]  # fmt: skip
        if importances:
            rows = [[name, f"{value:.3f}"] for name, value in importances.items()]
            lines += [
                "## Parameter importances (PED-ANOVA)",
                "",
                *markdown_table(["parameter", "importance"], rows, "lr"),
            ]
            lines.append("")
        lines += ["![optimisation history](history.png)", ""]
    return "\n".join(lines)


def _importances(study: optuna.Study) -> dict[str, float]:
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}  # too few or too uniform trials
