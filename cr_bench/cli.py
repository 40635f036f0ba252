"""The ``cr-bench`` command line, generated from the settings dataclasses of
:mod:`cr_bench.spec.commands` (and :class:`~cr_bench.spec.tune.TuneSettings`): each
field is an option, its docstring the help, its default the option's default.

User errors print one line (``cr-bench: error: ...``) and exit with status 2; Ctrl-C
during training saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import inspect
import itertools
import multiprocessing
import os
import shlex
import signal
import sys
import tempfile
import textwrap
import threading
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import yaml

from cr_bench import progress
from cr_bench.agents.models import load_model, resolve_device, set_torch_threads
from cr_bench.agents.registry import AGENTS, resolve_config, same_model
from cr_bench.envs.wrappers import MAX_EPISODE_FRAMES
from cr_bench.errors import CrBenchError, mask_secrets
from cr_bench.io import atomic_write_text, folders_removed_on_error
from cr_bench.results.stats import format_summary
from cr_bench.spec.commands import (
    BenchArgs,
    CompareArgs,
    EvalArgs,
    PlayArgs,
    PublishArgs,
    RecordArgs,
    ReportArgs,
    TrainArgs,
    VerifyArgs,
    checker,
    optional_of,
)
from cr_bench.spec.loader import parse_yaml
from cr_bench.spec.run import (
    VALIDATION_TRACK_START,
    EvalConfig,
    RunConfig,
    check_eval_config,
    check_held_out,
    read_config_file,
)
from cr_bench.spec.suite import suite_eval
from cr_bench.spec.tune import TuneSettings

if TYPE_CHECKING:
    from cr_bench.agents.rundir import RunDir


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, like every other cr-bench error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _integer(text: str) -> int:
    """An integer, also written as ``1e6``."""
    try:
        return int(float(text)) if "e" in text.lower() else int(text)
    except (ValueError, OverflowError):
        raise ValueError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _words_or(kind: Any) -> Callable[[str], Any]:
    """The parser of ``int | Literal[word, ...]`` (``--curve-points N|all``): a word as written, else an integer."""
    literals = [option for option in typing.get_args(kind) if typing.get_origin(option) is Literal]
    words = [word for literal in literals for word in typing.get_args(literal)]

    def parse(text: str) -> Any:
        if text in words:
            return text
        try:
            return _integer(text)
        except ValueError:
            raise ValueError(f"expected an integer or {' or '.join(words)}, got {text!r}") from None

    return parse


def _override(text: str) -> dict[str, Any]:
    """``a.b=value`` -> ``{"a": {"b": value}}`` with value parsed as YAML (a number, list, ...)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError:
        raise ValueError(f"cannot parse value of {key!r}: {raw!r}") from None
    for part in reversed(key.split(".")):
        value = {part: value}
    return dict(value)


def _writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check that a file can be written in it, before any long work.

    :raises CrBenchError: naming the path and the reason (a file in the way, no permission,
        a read-only filesystem).
    """
    if path.exists() and not path.is_dir():
        raise CrBenchError(f"cannot write to {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise CrBenchError(f"cannot write to {path}: {error.strerror or error}") from None
    return path


def _parser_of(annotation: Any) -> Callable[[str], Any]:
    """argparse ``type`` for a field type: parse the text, then apply the field's check."""
    base = optional_of(annotation)
    if typing.get_origin(base) is Annotated and base.__metadata__[0] == "override":
        parse: Callable[[str], Any] = _override
    else:
        kind = typing.get_args(base)[0] if typing.get_origin(base) is Annotated else base
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            parse = _words_or(kind)
        else:
            parse = {int: _integer, float: _number}.get(kind, str)
    check = checker(annotation)

    def convert(text: str) -> Any:
        try:
            value = parse(text)
            return check(value) if check is not None else value
        except ValueError as error:  # argparse shows the message with the flag's name
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings under a dataclass's fields, its bases' included (as tyro reads them)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in itertools.pairwise(body):
            documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if documented and isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argument per field of the settings dataclass ``cls``.

    The help is the field's docstring, with its default; the argument defaults to None (not
    given), so the dataclass applies its own default (:func:`settings_from`). Field metadata:
    ``positional``, ``flag``, ``metavar``, ``required``, and ``cli: False`` to leave a field out.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    for item in dataclasses.fields(cls):
        meta = item.metadata
        if not meta.get("cli", True):
            continue
        kind, help_text = optional_of(hints[item.name]), docs.get(item.name, "")
        default = item.default
        if default not in (None, "", False, dataclasses.MISSING) and not meta.get("positional"):
            help_text += f" (default {default})"
        options: dict[str, Any] = {"help": _literal(help_text)}
        if "metavar" in meta:
            options["metavar"] = meta["metavar"]
        if typing.get_origin(kind) is list:
            (kind,) = typing.get_args(kind)
            options.update(nargs="*") if meta.get("positional") else options.update(action="append")
        if kind is bool:
            options.update(action="store_true", default=None)
        elif typing.get_origin(kind) is Literal:
            options["choices"] = list(typing.get_args(kind))
        else:
            options["type"] = _parser_of(kind)
        if meta.get("positional"):
            parser.add_argument(item.name, **options)
        else:
            parser.add_argument(_flag(item), dest=item.name, required=meta.get("required", False), **options)
    parser.set_defaults(settings_class=cls)


def _literal(help_text: str) -> str:
    """``help_text`` as argparse shows it: argparse formats a help with ``%`` (``%(default)s``),
    so a ``%`` meant as written (a 95% CI) is doubled."""
    return help_text.replace("%", "%%")


def _flag(item: dataclasses.Field) -> str:
    """The option of a settings field: ``--field-name``, or its metadata's ``flag``."""
    return str(item.metadata.get("flag", "--" + item.name.replace("_", "-")))


def settings_from(args: argparse.Namespace) -> Any:
    """The command's settings dataclass from the options given (the others keep its defaults)."""
    cls = args.settings_class
    names = [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]
    return cls(**{name: getattr(args, name) for name in names if getattr(args, name) not in (None, [])})


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cr-bench", description="Train, evaluate and record SB3 agents on CarRacing-v3.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    agents = "; ".join(f"{name}: {spec.description}" for name, spec in AGENTS.items())
    for name, (cls, handler, summary, description) in _commands(agents).items():
        sub = commands.add_parser(name, help=_literal(summary), description=description)
        add_options(sub, cls)
        sub.set_defaults(handler=handler)
    return parser


def _commands(agents: str) -> dict[str, tuple[type, Callable[..., Any], str, str]]:
    return {
        "train": (
            TrainArgs,
            _train,
            "train an agent for a budget of env frames",
            f"Train an agent and write a run directory. Agents: {agents}.",
        ),
        "eval": (
            EvalArgs,
            _eval,
            "evaluate a run on held-out tracks",
            "Evaluate a trained run on fixed, held-out track seeds with the raw CarRacing return "
            "(no shaping, no early termination). Writes RUN_DIR/eval/episodes.csv and summary.yaml.",
        ),
        "verify": (
            VerifyArgs,
            _verify,
            "re-evaluate a published model and check its published mean",
            "Play a published model (RESULTS_DIR/models/NAME) on its published tracks, or the first N of them, "
            "with its published settings, without writing anything. Exits 0 when the new mean lies within the "
            "published mean's 95% bootstrap CI on those tracks, widened by --margin points on each side, and 1 "
            "otherwise. On the publishing machine the episodes replay exactly; on another CPU single tracks "
            "replay differently and only the mean is expected to agree.",
        ),
        "record": (
            RecordArgs,
            _record,
            "record one episode as a GIF or MP4",
            "Play one evaluation episode and write it with a frame and score overlay.",
        ),
        "play": (
            PlayArgs,
            _play,
            "drive CarRacing-v3 yourself with the arrow keys",
            "Drive CarRacing-v3 with the keyboard in a window showing the frame and the raw score. Needs a "
            "display (xvfb-run -a on a machine without one). --out writes the finished episodes' episodes.csv in "
            "eval's format, so a human joins a comparison (compare --human).",
        ),
        "tune": (
            TuneSettings,
            _tune,
            "search hyperparameters with Optuna",
            "Optuna search over an agent's hyperparameters and env pipeline. Trial 0 is the agent's config (or "
            "--config). Each trial trains for --frames-per-trial env frames, is evaluated periodically on "
            f"validation tracks (seeds {VALIDATION_TRACK_START}+) and may be pruned. The study is persistent: "
            "the same command continues it, and workers sharing --storage stop once it holds --trials trials. Writes "
            "RESULTS_DIR/tune/STUDY/ (trials.csv, best.yaml, summary.md, importances.csv, history.png).",
        ),
        "compare": (
            CompareArgs,
            _compare,
            "compare agents over seeds on the same held-out tracks",
            "With --suite: train what is missing of a benchmark suite (reusing finished runs, resuming "
            "interrupted ones), evaluate every run and the baselines on the same tracks, and write "
            "RESULTS_DIR/<suite>/ (episodes.csv, summary.csv, summary.md, plots). With RUN_DIRs: compare finished "
            f"runs ({suite_eval().episodes} test tracks each unless --episodes says otherwise).",
        ),
        "publish": (
            PublishArgs,
            _publish,
            "publish a trained run to results/models/NAME with its evaluation",
            "Copy a trained run to RESULTS_DIR/models/NAME (model without optimizer state, config, training "
            "curve, commands), evaluate it on --episodes held-out test tracks (the published figure), and again "
            "there in randomized colours (unless --no-randomized). Score its kept checkpoints and the final model "
            f"on --curve-episodes validation tracks ({VALIDATION_TRACK_START}+): a validation curve vs env frames "
            "and wall hours, and the time to 800 and 900 (the first scored point to reach it). The folder is a "
            "run directory; `cr-bench verify RESULTS_DIR/models/NAME` re-checks the published evaluation.",
        ),
        "report": (
            ReportArgs,
            _report,
            "rebuild results/README.md",
            "Rebuild RESULTS_DIR/README.md from every suite's summary, the tuning studies and throughput.",
        ),
        "bench": (
            BenchArgs,
            _bench,
            "measure env and training throughput",
            "Measure raw gymnasium and EnvPool frames/s, cr-bench's pipeline on each backend, and end-to-end "
            "training of ppo against SB3 PPO with the rl-zoo3 CarRacing recipe; write OUT_DIR/throughput.md and "
            "throughput.csv.",
        ),
    }


def _train(args: TrainArgs, command: str) -> None:
    from cr_bench.agents.init_from import find_start
    from cr_bench.agents.rundir import RunDir
    from cr_bench.agents.training import default_run_dir, resume, train

    if args.resume:
        if args.out is None:
            raise CrBenchError("--resume needs --out RUN_DIR")
        kept = {"agent", "frames", "out", "resume"}  # what a resume may be given
        given = {name: value for name, value in vars(args).items() if value is not None and value is not False}
        ignored = [_flag(item) for item in dataclasses.fields(args)
                   if item.name not in kept and given.get(item.name, []) != []]  # fmt: skip
        if ignored:
            raise CrBenchError(
                f"--resume continues the saved config; only --frames may change, not {', '.join(ignored)}"
            )
        saved = RunDir(args.out).read_config()
        if not same_model(saved.agent, args.agent):  # a former name, or ppo-v1 for ppo: the same model
            raise CrBenchError(f"{args.out} holds a {saved.agent} run, not {args.agent}")
        out, config, verb = Path(args.out), saved, "resuming"
        frames = (args.frames or saved.frames) - int(RunDir(out).read_progress()["frames_done"])
        start = functools.partial(resume, out, frames=args.frames, command=command)
    else:
        flags: dict[str, Any] = {
            key: value
            for key, value in {
                "frames": args.frames,
                "seed": args.seed,
                "n_envs": args.n_envs,
                "device": args.device,
            }.items()
            if value is not None
        }
        if args.backend is not None:
            flags["env"] = {"backend": args.backend}
        file_config = read_config_file(args.config, args.agent, keep_frames=True)
        config = resolve_config(args.agent, file_config, *args.overrides, flags)
        out, verb = default_run_dir(config) if args.out is None else Path(args.out), "training"
        frames = config.frames
        if args.init_from is not None:
            frames -= find_start(args.init_from).frames
        start = functools.partial(train, config, out, command=command, init_from=args.init_from)
    resolve_device(config.device)  # a device this machine lacks: refused before any folder exists
    try:
        # Refused or stopped before it saved anything, a training leaves no folder that looks like a run.
        with folders_removed_on_error(out):
            _writable_dir(out)
            _announce_training(config, max(0, frames), verb)
            run = start()
    except KeyboardInterrupt:
        raise _Interrupted(_after_interrupted_training(RunDir(out), args.agent, command)) from None
    print(f"run saved in {run.path}")


def _after_interrupted_training(run: RunDir, agent: str, command: str) -> str:
    """What works after Ctrl-C stopped a training: resuming what it saved, or, when it saved
    nothing (stopped before its env and model existed), the same command."""
    if run.model.is_file():
        again = shlex.join(["cr-bench", "train", agent, "--out", str(run.path), "--resume"])
        return f"the run is saved in {run.path}: continue it with `{again}`"
    return f"nothing was saved, and `{command}` starts the training again"


def _announce_training(config: RunConfig, frames: int, verb: str) -> None:
    backend = config.env.backend
    fps = progress.training_fps(config)
    progress.say(f"{verb} {config.agent} seed {config.seed} on {backend}: {progress.estimate(frames, fps)}")


def _eval(args: EvalArgs, command: str) -> None:
    from cr_bench.agents.rundir import RunDir
    from cr_bench.evaluation.episodes import evaluate, print_episode, write_episodes
    from cr_bench.results.publish import published_folder

    run = RunDir(args.run_dir)
    config = run.read_config()
    out = run.eval_dir if args.out is None else Path(args.out)
    published = published_folder(out)
    if published is not None:
        published = Path(os.path.relpath(published))
        raise CrBenchError(
            f"{published} is a published model folder and keeps its published evaluation; "
            f"`cr-bench verify {published}` re-checks it, --out DIR writes a new evaluation elsewhere"
        )
    settings = merge_eval(config.eval, args)
    if args.stochastic:
        settings = dataclasses.replace(settings, deterministic=False)
    check_eval_config(settings)
    check_held_out(config.training_seeds, settings.track_seeds, f"evaluating {run.path}")
    # Everything that can refuse comes before the output folder exists (and a failure removes it).
    model = load_model(config, str(run.require_model()), device=args.device or "auto")
    set_torch_threads(config.torch_threads)
    with folders_removed_on_error(out):
        _writable_dir(out)
        last = settings.track_seeds[-1]
        fps = progress.evaluation_fps(settings.backend, settings.n_envs, action_repeat=config.env.action_repeat)
        frames = settings.episodes * MAX_EPISODE_FRAMES  # episodes may end sooner
        print(
            f"evaluating {run.path} on {settings.backend} track seeds {settings.track_seed_start}..{last}: "
            + progress.estimate(frames, fps)
        )
        results = evaluate(model, config.env, settings, on_episode=print_episode)
        summary = write_episodes(out / "episodes.csv", results, settings.backend)
        atomic_write_text(out / "command.txt", command + "\n")
    print(f"score: {format_summary(summary)}")
    print(f"episodes written to {out / 'episodes.csv'}")


def merge_eval(base: EvalConfig, args: Any) -> EvalConfig:
    """``base`` with the evaluation options ``args`` gives (episodes, track_seed_start, backend, n_envs)."""
    names = ("episodes", "track_seed_start", "backend", "n_envs")
    changes = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return dataclasses.replace(base, **changes)


def _verify(args: VerifyArgs, command: str) -> int:
    from cr_bench.evaluation.episodes import print_episode
    from cr_bench.evaluation.verify import verify

    verification = verify(args.run_dir, args.episodes, args.track_seed_start, args.margin, on_episode=print_episode)
    print(verification.report())
    return 0 if verification.passed else 1


def _record(args: RecordArgs, command: str) -> None:
    from cr_bench.agents.rundir import RunDir
    from cr_bench.evaluation.recording import check_video_path, record

    run = RunDir(args.run_dir)
    config = run.read_config()
    out = Path(args.out)
    check_video_path(out, "--out")
    model = load_model(config, str(run.require_model()))
    track_seed = config.eval.track_seed_start if args.track_seed is None else args.track_seed
    backend = config.eval.backend if args.backend is None else args.backend
    with folders_removed_on_error(out.parent):
        _writable_dir(out.parent)
        result = record(model, config.env, out, track_seed, fps=args.fps, every=args.every, backend=backend)
        atomic_write_text(out.with_name(out.name + ".txt"), command + "\n")
    print(f"track {track_seed}: return {result.true_return:.1f} in {result.length} frames; wrote {out}")


def _play(args: PlayArgs, command: str) -> None:
    from cr_bench.evaluation.episodes import write_episodes
    from cr_bench.evaluation.play import KEYS, check_display, play_episode
    from cr_bench.evaluation.recording import check_video_path, write_video

    check_display()
    video = None if args.record is None else Path(args.record)
    if video is not None:
        check_video_path(video, "--record")
        _writable_dir(video.parent)
    out = None if args.out is None else _writable_dir(Path(args.out))
    print(f"cr-bench play: {KEYS}")
    results, frames = [], []
    for track_seed in range(args.track_seed_start, args.track_seed_start + args.episodes):
        episode = play_episode(track_seed, args.fps, keep_frames=video is not None)
        result = episode.result
        early = " (ended early: not kept as a score)" if episode.ended_early else ""
        print(f"track {track_seed}: return {result.true_return:.1f} in {result.length} frames{early}")
        frames += episode.frames
        if episode.ended_early:
            break
        results.append(result)
    if out is not None and results:  # first: a video that cannot be written loses no score
        write_episodes(out / "episodes.csv", results, "gymnasium")
        atomic_write_text(out / "command.txt", command + "\n")
        print(f"{len(results)} finished episode(s) written to {out / 'episodes.csv'}")
    if video is not None and frames:
        write_video(video, frames, args.fps)
        print(f"wrote {video}")


def _publish(args: PublishArgs, command: str) -> None:
    from cr_bench.results.publish import publish

    out = publish(
        args.run_dir,
        Path(args.results_dir) / "models" / args.name,
        episodes=args.episodes,
        curve_points=args.curve_points,
        curve_episodes=args.curve_episodes,
        command=command,
        n_envs=args.n_envs,
        force=args.force,
        randomized=not args.no_randomized,
        model_choice=args.model,
    )
    print(f"check it with: cr-bench verify {out}")


def _tune(settings: TuneSettings, command: str) -> None:
    from cr_bench.runner.study import counted
    from cr_bench.runner.tuning import tune

    settings.command = command
    if (number := settings.export_trial) is not None:
        from cr_bench.results.tune_report import export_trial
        from cr_bench.runner.study import open_existing_study

        study, settings = open_existing_study(settings)
        path = export_trial(study, settings, number)
        print(f"wrote {path}: cr-bench train {settings.agent} --config {path} --frames N")
        return
    if settings.replay_pruners or settings.replay_samplers or settings.replay_budgets:
        from cr_bench.runner import pruner_replay, sampler_replay
        from cr_bench.runner.study import open_existing_study

        study, settings = open_existing_study(settings)  # under the study's own rules
        if settings.replay_budgets:
            print(pruner_replay.write_budgets(study, settings))
        else:
            replay = pruner_replay if settings.replay_pruners else sampler_replay
            print(replay.write_replay(study, settings))
        return
    study = tune(settings)
    print((settings.out_dir / "summary.md").read_text())
    print(f"study {settings.study_name}: {len(counted(study))} trials; outputs in {settings.out_dir}")


def _compare(args: CompareArgs, command: str) -> None:
    from cr_bench.envs.baselines import BASELINES
    from cr_bench.runner.compare import compare_runs, compare_suite

    if bool(args.suite) == bool(args.run_dirs):
        raise CrBenchError("give either --suite FILE or one or more RUN_DIRs")
    results_dir, runs_dir = Path(args.results_dir), Path(args.runs_dir)
    if args.report_only and not args.suite:
        raise CrBenchError("--report-only reports a --suite in progress")
    if args.suite and args.human:
        raise CrBenchError("--human joins a comparison of RUN_DIRs, not a --suite")
    if args.executor == "ray" and args.workers != 1:
        raise CrBenchError("--workers runs local processes; with --executor ray the cluster schedules the tasks")
    if args.suite:
        summary = compare_suite(
            Path(args.suite),
            args.workers,
            results_dir,
            runs_dir,
            command,
            device=args.device,
            executor=args.executor,
            ray_address=args.ray_address,
            report_only=args.report_only,
        )
    else:
        settings = merge_eval(suite_eval(), args)
        if settings.backend != "gymnasium":
            settings.randomized = False
        runs = [Path(folder) for folder in args.run_dirs]
        humans = [Path(folder) for folder in args.human]
        summary = compare_runs(
            runs,
            settings,
            results_dir / args.name,
            list(BASELINES),
            command,
            args.device or "auto",
            humans,
            executor=args.executor,
            ray_address=args.ray_address,
        )
    print(summary.read_text())
    print(f"written {summary.parent}")


def _report(args: ReportArgs, command: str) -> None:
    from cr_bench.results.report import build_report

    print(f"written {build_report(Path(args.results_dir), command)}")


def _bench(args: BenchArgs, command: str) -> None:
    from cr_bench.runner.bench import run_bench, write_results

    rows = run_bench(args.raw_frames, args.train_frames, reference=not args.no_reference, levers=not args.no_levers)
    csv_path, md_path = write_results(rows, Path(args.out_dir), command)
    print(md_path.read_text())
    print(f"written {md_path} and {csv_path}")


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what works next (:func:`main` prints it)."""

    def __init__(self, advice: str) -> None:
        super().__init__(advice)
        self.advice = advice


_AFTER_INTERRUPT = {
    "tune": "finished trials are kept; run the same command again to continue",
    "compare": "saved runs and finished evaluations are kept; run the same command again to continue",
}
"""What works after Ctrl-C, for commands that continue where they stopped (train says it itself)."""


def _interrupt(signum: int, frame: Any) -> NoReturn:
    """SIGTERM acts as Ctrl-C: worker processes get SIGINT (they save), then this one stops."""
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)  # type: ignore[arg-type]
    raise KeyboardInterrupt


WORKER_PRELOAD = ["cr_bench.cli", "torch._dynamo"]
"""What multiprocessing's fork server imports once for all the workers it forks (evaluation,
compare, the checkpoint scorer, SubprocVecEnv): the CLI with torch, SB3 and gymnasium, and
torch's compiler stack, which a process imports when it builds its first optimizer (every
model load does): 2-5 seconds of CPU per worker otherwise."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    multiprocessing.set_forkserver_preload(WORKER_PRELOAD)
    args = build_parser().parse_args(argv)
    command = mask_secrets(shlex.join(["cr-bench", *argv]))  # it is printed and saved
    # A run in the background (where the shell ignores SIGINT) or under a job scheduler is
    # stopped with SIGTERM: it saves like Ctrl-C does. Only the main thread may set handlers.
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if on_main_thread:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.handler(settings_from(args), command) or 0)
    except CrBenchError as error:
        print(f"cr-bench: error: {mask_secrets(str(error))}", file=sys.stderr)
        return 2
    except OSError as error:  # a file or folder the user named (or the disk) failed us: no traceback
        print(f"cr-bench: error: {mask_secrets(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        advice = getattr(interrupt, "advice", None) or _AFTER_INTERRUPT.get(args.command)
        print("cr-bench: interrupted" + (f"; {advice}" if advice else ""), file=sys.stderr)
        return 130
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
