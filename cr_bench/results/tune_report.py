"""What a tuning study writes: trials.csv, best.yaml, importances.csv, summary.md, history.png."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from cr_bench.errors import CrBenchError
from cr_bench.io import atomic_write_text, write_csv, write_dataframe
from cr_bench.results.plots import plot_optimization_history, plot_score_vs_frames
from cr_bench.results.tables import BOOTSTRAP_TEXT, curve_table, interval, markdown_table
from cr_bench.runner.study import FINISHED, MACHINE_ATTR, counted
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
    confirmation = Confirmation.read(study, out)
    if confirmation is not None and len(confirmation.table):
        write_dataframe(out / "confirm_curve.csv", confirmation.table.round(2))
        plot_score_vs_frames(confirmation.table, out / "confirm.png")
    chosen = confirmation.winner() if confirmation is not None else None
    if complete:
        best = next(t for t in trials if t.number == chosen) if chosen is not None else complete[0]
        write_yaml(out / "best.yaml", trial_config(best, settings))
    importances = _importances(study)
    if importances:
        write_csv(out / "importances.csv", ["parameter", "importance"], importances.items())
    text = _summary(settings, trials, complete, importances, chosen, _machines(study))
    if confirmation is not None:
        text += "\n".join(confirmation.markdown(trials, complete)) + "\n"
    atomic_write_text(out / "summary.md", text)
    if len(complete) >= 1:
        plot_optimization_history(study, out / "history.png")


def trial_config(trial: FrozenTrial, settings: TuneSettings) -> dict[str, Any]:
    """A trial's config as a file to train from (best.yaml's form): no budget, which is the
    user's choice, and the base config's threads, as a trial trained on a worker's share of
    the cores and a training of the config has them all."""
    config = dict(trial.user_attrs["config"])
    config.pop("frames", None)
    config["torch_threads"] = settings.resolved_base().torch_threads
    return config


def export_trial(study: optuna.Study, settings: TuneSettings, number: int) -> Path:
    """``--export-trial N``: write trial N's config to ``trial-N.yaml`` beside best.yaml.

    :raises CrBenchError: when the study has no trial N or it recorded no config.
    """
    trials = study.get_trials(deepcopy=False)
    trial = next((t for t in trials if t.number == number), None)
    if trial is None:
        span = f"its trials are 0..{len(trials) - 1}" if trials else "it has none"
        raise CrBenchError(f"study {settings.study_name} has no trial {number} ({span})")
    if "config" not in trial.user_attrs:
        raise CrBenchError(f"trial {number} of study {settings.study_name} recorded no config ({trial.state.name})")
    path = settings.out_dir / f"trial-{number}.yaml"
    write_yaml(path, trial_config(trial, settings))
    return path


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


def _machines(study: optuna.Study) -> str:
    """What the study's workers ran on (:func:`cr_bench.runner.study.record_machine`)."""
    found = sorted(key.removeprefix(MACHINE_ATTR) for key in study.user_attrs if key.startswith(MACHINE_ATTR))
    return "; ".join(found) or "a machine not recorded"


def _summary(
    settings: TuneSettings,
    trials: list[FrozenTrial],
    complete: list[FrozenTrial],
    importances: dict[str, float],
    chosen: int | None = None,
    machines: str = "a machine not recorded",
) -> str:
    states = {state.name: sum(1 for t in trials if t.state == state) for state in FINISHED}
    frames = sum(int(t.user_attrs.get("frames", 0)) for t in trials)
    lines = [
        f"# Tuning {settings.agent}: study `{settings.study_name}`",
        "",
        f"Produced by `{settings.command}`.",
        "",
        f"{len(trials)} trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, {states['FAIL']} failed; "
        f"{frames:,} env frames in {_wall_hours(trials):.2f} wall hours on {machines}. "
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
        number = complete[0].number if chosen is None else chosen
        why = "" if chosen is None else ", chosen by the confirmation below"
        lines += ["", f"`best.yaml` holds trial {number}'s config{why}: `cr-bench train {settings.agent} "
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


@dataclass
class Confirmation:
    """A study's confirmation (:mod:`cr_bench.runner.confirm`) as its report reads it: the rules
    the study recorded and the scores in ``confirm.csv``."""

    rules: dict[str, Any]
    """The study's ``confirmation`` attribute: frames, seeds, trials, trial_frames, every_frames, episodes."""
    scores: pd.DataFrame
    """``confirm.csv``: trial, seed, frames, track_seed, return."""
    table: pd.DataFrame
    """:func:`~cr_bench.results.tables.curve_table` of the scores, one "agent" per trial."""

    @classmethod
    def read(cls, study: optuna.Study, out: Path) -> Confirmation | None:
        """The study's confirmation, or None if it never ran one."""
        rules = study.user_attrs.get("confirmation")
        if rules is None or not (out / "confirm.csv").is_file():
            return None
        scores = pd.read_csv(out / "confirm.csv")
        scores = scores[scores["trial"].isin(rules["trials"]) & scores["seed"].isin(rules["seeds"])]
        table = curve_table(scores.assign(agent=[f"trial {n}" for n in scores["trial"]])) if len(scores) else scores
        return cls(rules, scores, table)

    def finished(self) -> bool:
        """Whether every candidate has every seed scored at the confirmation budget."""
        last = self.scores[self.scores["frames"] == self.rules["frames"]]
        runs = set(zip(last["trial"], last["seed"], strict=True))
        return all((trial, seed) in runs for trial in self.rules["trials"] for seed in self.rules["seeds"])

    def winner(self) -> int | None:
        """The candidate with the best mean at the confirmation budget, once it is finished."""
        return self.best_other(None, int(self.rules["frames"])) if self.finished() else None

    def cell(self, trial: int, frames: int) -> str:
        """``mean [CI] (n seeds)`` of ``trial`` at ``frames``, or a dash where not scored yet."""
        row = self.table[(self.table["agent"] == f"trial {trial}") & (self.table["frames"] == frames)]
        if row.empty:
            return "-"
        r = row.iloc[0]
        return f"{r['mean']:.1f} {interval(r['ci_low'], r['ci_high'], r['ci_over'])} ({r['seeds']})"

    def best_other(self, trial: int | None, frames: int) -> int | None:
        """The candidate other than ``trial`` (None: any) with the best mean at ``frames``, if any."""
        last = self.scores[(self.scores["frames"] == frames) & (self.scores["trial"] != trial)]
        return None if last.empty else int(last.groupby("trial")["return"].mean().idxmax())

    def apart(self, a: int, b: int, frames: int) -> bool:
        """Whether the CIs of trials ``a`` and ``b`` at ``frames`` exist and do not overlap."""
        rows = self.table[self.table["frames"] == frames].set_index("agent")
        low_a, high_a = rows.loc[f"trial {a}", ["ci_low", "ci_high"]]
        low_b, high_b = rows.loc[f"trial {b}", ["ci_low", "ci_high"]]
        return bool(high_b < low_a or high_a < low_b)  # False when either is NaN (no CI)

    def markdown(self, trials: list[FrozenTrial], complete: list[FrozenTrial]) -> list[str]:
        """The summary's "Confirmation on fresh seeds" section."""
        rules, values = self.rules, {t.number: t for t in trials}
        trial_frames, frames = int(rules["trial_frames"]), int(rules["frames"])
        lines = [
            "## Confirmation on fresh seeds",
            "",
            f"The top configs and the base config, trained again on seeds {rules['seeds']} (no trial used them) "
            f"to {frames:,} frames, a checkpoint every {int(rules['every_frames']):,}; each checkpoint scored "
            f"deterministically on {rules['episodes']} validation tracks ({VALIDATION_TRACK_START:,}+). Mean over "
            f"seeds and tracks, 95% CI by {BOOTSTRAP_TEXT} († over tracks: one seed so far), seeds "
            "scored in brackets (`confirm.csv`, `confirm_curve.csv`, `confirm.png`).",
            "",
        ]
        rows = []
        for number in rules["trials"]:
            trial = values.get(number)
            label = f"{number} (base)" if trial is not None and trial.user_attrs.get("default") else str(number)
            value = "-" if trial is None or trial.value is None else f"{trial.value:.1f}"
            rows.append([label, value, self.cell(number, trial_frames), self.cell(number, frames)])
        lines += markdown_table(
            ["trial", "study value", f"at {trial_frames:,} frames", f"at {frames:,} frames"], rows, "rrrr"
        )
        winner = self.winner()
        if winner is None:
            lines += ["", f"In progress: `best.yaml` is the study's best trial until every config has all its seeds "
                      f"scored at {frames:,} frames (the same command continues).", ""]  # fmt: skip
            return lines
        study_best = complete[0].number if complete else None
        lines += [
            "",
            f"`best.yaml` is trial {winner}'s config: the best mean at {frames:,} frames, the budget users "
            f"train at (the study's own best at {trial_frames:,} frames was trial {study_best}).",
        ]
        base = next((n for n in rules["trials"] if values.get(n) and values[n].user_attrs.get("default")), None)
        if base == winner:
            lines += [f"Tuning did not beat the base config at {frames:,} frames: its confirmed mean is the best."]
            runner_up = self.best_other(base, frames)
            if runner_up is not None:
                apart = self.apart(base, runner_up, frames)
                lines[-1] += f" The best tuned config, trial {runner_up}, is below it and their CIs " + (
                    "do not overlap." if apart else "overlap, so these seeds do not tell them apart."
                )
        elif base is not None:
            apart = self.apart(winner, base, frames)
            lines += [
                f"Trial {winner}'s confirmed mean is above the base config's at {frames:,} frames; their CIs "
                + ("do not overlap." if apart else "overlap, so these seeds do not tell them apart.")
            ]
        lines += ["", "![confirmation curves](confirm.png)", ""]
        return lines
