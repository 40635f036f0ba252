"""The ``cr-bench`` command line: train, eval, record.

User errors print one line (``cr-bench: error: ...``) and exit with status 2; Ctrl-C
during training saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from cr_bench.agents import AGENTS, get_agent, load_model, resolve_config, set_torch_threads
from cr_bench.config import check_frames, parse_yaml, read_yaml
from cr_bench.envs import BACKENDS
from cr_bench.errors import CrBenchError
from cr_bench.stats import format_summary
from cr_bench.verify import DEFAULT_MARGIN


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line, like every other cr-bench error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _non_negative_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0, got 0")
    return value


def _frames(text: str) -> int:
    """A frame budget: a positive integer up to :data:`~cr_bench.config.MAX_FRAMES`."""
    try:
        return check_frames(_positive_int(text), "the budget")
    except CrBenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _margin(text: str) -> float:
    """A margin in return points: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of return points, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


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


def _override(text: str) -> dict[str, Any]:
    """``a.b=value`` -> ``{"a": {"b": value}}`` with value parsed as YAML (a number, list, ...)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"cannot parse value of {key!r}: {raw!r}") from None
    for part in reversed(key.split(".")):
        value = {part: value}
    return dict(value)


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings under a dataclass's fields (as tyro reads them), first sentence each."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in itertools.pairwise(body):
        documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if documented and isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            docs[node.target.id] = " ".join(str(after.value.value).split())
    return docs


def add_fields(
    parser: argparse.ArgumentParser, cls: type, types: dict[str, Any], flags: dict[str, str] | None = None
) -> None:
    """Add ``--field-name`` options for ``cls``'s fields named in ``types`` (a type or a list of
    choices). Help text is the field's docstring; the default is the field's own, shown in
    the help and applied by the dataclass (the option defaults to None: not given)."""
    docs = field_docs(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, kind in types.items():
        default = defaults[name]
        shown = f" (default {default})" if default not in ("", None) else ""
        options: dict[str, Any] = {"choices": kind} if isinstance(kind, list) else {"type": kind}
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        parser.add_argument(flag, dest=name, default=None, help=docs.get(name, "") + shown, **options)


def fields_given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options among ``names`` that the user gave (not None)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def tune_flags() -> dict[str, Any]:
    """The TuneSettings fields ``cr-bench tune`` takes as options, with their types or choices."""
    from cr_bench.tuning import PRUNERS, SAMPLERS

    return {
        "trials": _positive_int,
        "frames_per_trial": _frames,
        "eval_episodes": _positive_int,
        "final_eval_episodes": _positive_int,
        "evals_per_trial": _positive_int,
        "value_evals": _positive_int,
        "seeds_per_trial": _positive_int,
        "seed": _non_negative_int,
        "sampler": list(SAMPLERS),
        "pruner": list(PRUNERS),
        "storage": str,
        "study_name": str,
        "results_dir": Path,
        "runs_dir": Path,
        "space_file": Path,
        "eval_backend": list(BACKENDS),
    }


def build_parser() -> argparse.ArgumentParser:
    from cr_bench.tuning import TuneSettings

    parser = _Parser(prog="cr-bench", description="Train, evaluate and record SB3 agents on CarRacing-v3.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    agents = "; ".join(f"{name}: {spec.description}" for name, spec in AGENTS.items())
    train = commands.add_parser(
        "train",
        help="train an agent for a budget of env frames",
        description=f"Train an agent and write a run directory. Agents: {agents}.",
    )
    train.add_argument("agent", metavar="AGENT", help=f"one of: {', '.join(AGENTS)}")
    train.add_argument("--frames", type=_frames, help="budget in env frames (raw CarRacing steps)")
    train.add_argument("--seed", type=_non_negative_int, help="training seed (default 0)")
    train.add_argument("--config", type=Path, help="YAML file overriding the agent's defaults")
    train.add_argument("--n-envs", type=_positive_int, help="parallel environments")
    train.add_argument(
        "--backend",
        choices=["auto", *BACKENDS],
        help="simulator (default auto: envpool when installed, else gymnasium)",
    )
    train.add_argument(
        "--set",
        dest="overrides",
        type=_override,
        action="append",
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set algo.learning_rate=3e-4 (repeatable)",
    )
    train.add_argument("--out", type=Path, help="run directory (default runs/AGENT-seedS-TIME)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out (after Ctrl-C or to raise --frames)"
    )
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a run on held-out tracks",
        description="Evaluate a trained run on fixed, held-out track seeds with the raw CarRacing return "
        "(no shaping, no early termination). Writes RUN_DIR/eval/episodes.csv and summary.yaml.",
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument(
        "--episodes", type=_positive_int, help="episodes, one track each (default from the run's config)"
    )
    evaluate.add_argument("--track-seed-start", type=_non_negative_int, help="first track seed (default 1000000)")
    evaluate.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of the deterministic action"
    )
    evaluate.add_argument(
        "--backend",
        choices=BACKENDS,
        help="simulator (default gymnasium, the reference; tracks differ between backends)",
    )
    evaluate.add_argument("--n-envs", type=_positive_int, help="episodes played at once (default 2)")
    evaluate.add_argument(
        "--out",
        type=Path,
        help="folder for episodes.csv, summary.yaml and command.txt (default RUN_DIR/eval; "
        "never inside a published model folder)",
    )
    evaluate.set_defaults(handler=_eval)

    check = commands.add_parser(
        "verify",
        help="re-evaluate a published model and check its published mean",
        description="Play a published model (RESULTS_DIR/models/NAME) on its published tracks, or the first N of "
        "them, with its published settings, without writing anything. Exits 0 when the new mean lies within "
        "the published mean's 95% bootstrap CI on those tracks, widened by --margin points on each side, and "
        "1 otherwise. On the publishing machine the episodes replay exactly; on another CPU single tracks "
        "replay differently and only the mean is expected to agree.",
    )
    check.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a published model folder")
    check.add_argument("--episodes", type=_positive_int, help="the first N published tracks (default all)")
    check.add_argument(
        "--track-seed-start", type=_non_negative_int, help="first track, within the published ones (default theirs)"
    )
    check.add_argument(
        "--margin",
        type=_margin,
        default=DEFAULT_MARGIN,
        help=f"return points added to each side of the published CI (default {DEFAULT_MARGIN:g})",
    )
    check.set_defaults(handler=_verify)

    rec = commands.add_parser(
        "record",
        help="record one episode as a GIF or MP4",
        description="Play one evaluation episode and write it with a frame and score overlay.",
    )
    rec.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    rec.add_argument("--out", type=Path, required=True, help="output file, .gif or .mp4")
    rec.add_argument("--track-seed", type=_non_negative_int, help="track seed (default: the first eval track)")
    rec.add_argument("--fps", type=_positive_int, default=25, help="frames per second of the video")
    rec.add_argument("--every", type=_positive_int, default=2, help="keep every N-th env frame")
    rec.add_argument(
        "--backend", choices=BACKENDS, help="simulator (default gymnasium, which renders the 600x400 view)"
    )
    rec.set_defaults(handler=_record)

    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with Optuna",
        description="Optuna search over an agent's hyperparameters and env pipeline. Trial 0 is the agent's "
        "config (or --config). Each trial trains for --frames-per-trial env frames, is evaluated periodically on "
        "validation tracks (seeds 2000000+) and may be pruned. The study is persistent: the same command "
        "continues it, and workers sharing --storage stop once it holds --trials trials. Writes "
        "RESULTS_DIR/tune/STUDY/ (trials.csv, best.yaml, summary.md, importances.csv, history.png).",
    )
    tune.add_argument("agent", metavar="AGENT", help=f"one of: {', '.join(AGENTS)}")

    add_fields(tune, TuneSettings, tune_flags(), flags={"space_file": "--space"})
    tune.add_argument("--n-jobs", type=_positive_int, default=1, help="worker processes on this machine (default 1)")
    tune.add_argument("--config", type=Path, help="base config every trial starts from")
    tune.set_defaults(handler=_tune)

    compare = commands.add_parser(
        "compare",
        help="compare agents over seeds on the same held-out tracks",
        description="With --suite: train what is missing of a benchmark suite (reusing finished runs, resuming "
        "interrupted ones), evaluate every run and the baselines on the same tracks, and write "
        "RESULTS_DIR/<suite>/ (episodes.csv, summary.csv, summary.md, plots). With RUN_DIRs: compare finished runs.",
    )
    compare.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="finished runs to compare")
    compare.add_argument("--suite", type=Path, help="suite YAML, e.g. benchmarks/smoke.yaml")
    compare.add_argument("--workers", type=_positive_int, default=1, help="(agent, seed) jobs run in parallel")
    compare.add_argument("--results-dir", type=Path, default=Path("results"), help="root of the outputs")
    compare.add_argument("--runs-dir", type=Path, default=Path("runs"), help="root of the suite's runs")
    compare.add_argument("--name", default="compare", help="output folder name for RUN_DIRs (default compare)")
    compare.add_argument("--episodes", type=_positive_int, help="RUN_DIRs: tracks per run (default 20)")
    compare.add_argument("--track-seed-start", type=_non_negative_int, help="RUN_DIRs: first track (default 1000000)")
    compare.add_argument("--backend", choices=BACKENDS, help="RUN_DIRs: simulator (default gymnasium)")
    compare.set_defaults(handler=_compare)

    pub = commands.add_parser(
        "publish",
        help="publish a trained run to results/models/NAME with its evaluation",
        description="Copy a trained run to RESULTS_DIR/models/NAME (model without optimizer state, config, "
        "training curve, commands), evaluate it on held-out tracks, and score its kept checkpoints on the first "
        "--curve-episodes of them (score vs env frames and wall hours). The folder is a run directory; "
        "`cr-bench verify RESULTS_DIR/models/NAME` re-checks the published evaluation.",
    )
    pub.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    pub.add_argument("--name", required=True, help="folder name under RESULTS_DIR/models")
    pub.add_argument("--results-dir", type=Path, default=Path("results"))
    pub.add_argument("--episodes", type=_positive_int, default=100, help="held-out tracks for the final model")
    pub.add_argument("--curve-points", type=_non_negative_int, default=8, help="kept checkpoints to score")
    pub.add_argument("--curve-episodes", type=_positive_int, default=20, help="tracks per checkpoint score")
    pub.add_argument("--n-envs", type=_positive_int, help="episodes played at once (default from the run)")
    pub.add_argument("--force", action="store_true", help="replace an existing published folder")
    pub.set_defaults(handler=_publish)

    report = commands.add_parser(
        "report",
        help="rebuild results/README.md",
        description="Rebuild RESULTS_DIR/README.md from every suite's summary, the tuning studies and throughput.",
    )
    report.add_argument("--results-dir", type=Path, default=Path("results"))
    report.set_defaults(handler=_report)

    bench = commands.add_parser(
        "bench",
        help="measure env and training throughput",
        description="Measure raw gymnasium and EnvPool frames/s, cr-bench's pipeline on each backend, and "
        "end-to-end training of ppo against SB3 PPO with the rl-zoo3 CarRacing recipe; write "
        "OUT_DIR/throughput.md and throughput.csv.",
    )
    bench.add_argument("--raw-frames", type=_frames, default=4000, help="frames for the gymnasium measurements")
    bench.add_argument("--train-frames", type=_frames, default=40_000, help="frames of each training run")
    bench.add_argument("--no-reference", action="store_true", help="skip the (slow) reference training run")
    bench.add_argument("--out-dir", type=Path, default=Path("results"), help="where to write the tables")
    bench.set_defaults(handler=_bench)
    return parser


def _train(args: argparse.Namespace, command: str) -> None:
    from cr_bench.rundir import RunDir
    from cr_bench.training import default_run_dir, resume, train

    if args.resume:
        if args.out is None:
            raise CrBenchError("--resume needs --out RUN_DIR")
        ignored = [flag for flag, value in [("--seed", args.seed), ("--config", args.config), ("--n-envs", args.n_envs),
                   ("--backend", args.backend), ("--set", args.overrides)] if value is not None]  # fmt: skip
        if ignored:
            raise CrBenchError(
                f"--resume continues the saved config; only --frames may change, not {', '.join(ignored)}"
            )
        saved = RunDir(args.out).read_config()
        if get_agent(saved.agent) is not get_agent(args.agent):  # a former name is the same agent
            raise CrBenchError(f"{args.out} holds a {saved.agent} run, not {args.agent}")
        _writable_dir(args.out)
        run = resume(args.out, frames=args.frames, command=command)
    else:
        flags: dict[str, Any] = {
            key: value
            for key, value in {"frames": args.frames, "seed": args.seed, "n_envs": args.n_envs}.items()
            if value is not None
        }
        if args.backend is not None:
            flags["env"] = {"backend": args.backend}
        file_config = read_yaml(args.config) if args.config else {}
        file_config.setdefault("agent", args.agent)
        config = resolve_config(args.agent, file_config, *(args.overrides or []), flags)
        out = _writable_dir(default_run_dir(config) if args.out is None else args.out)
        run = train(config, out, command=command)
    print(f"run saved in {run.path}")


def _eval(args: argparse.Namespace, command: str) -> None:
    from cr_bench.evaluation import evaluate, print_episode, write_episodes
    from cr_bench.publish import published_folder
    from cr_bench.rundir import RunDir

    run = RunDir(args.run_dir)
    config = run.read_config()
    out = run.eval_dir if args.out is None else args.out
    published = published_folder(out)
    if published is not None:
        published = Path(os.path.relpath(published))
        raise CrBenchError(
            f"{published} is a published model folder and keeps its published evaluation; "
            f"`cr-bench verify {published}` re-checks it, --out DIR writes a new evaluation elsewhere"
        )
    _writable_dir(out)
    model = load_model(config.agent, str(run.require_model()))
    set_torch_threads(config.torch_threads)
    episodes = config.eval.episodes if args.episodes is None else args.episodes
    start = config.eval.track_seed_start if args.track_seed_start is None else args.track_seed_start
    backend = config.eval.backend if args.backend is None else args.backend
    print(f"evaluating {run.path} on {backend} track seeds {start}..{start + episodes - 1}")
    results = evaluate(
        model,
        config.env,
        episodes,
        start,
        deterministic=config.eval.deterministic and not args.stochastic,
        backend=backend,
        n_envs=config.eval.n_envs if args.n_envs is None else args.n_envs,
        on_episode=print_episode,
    )
    summary = write_episodes(out / "episodes.csv", results, backend)
    (out / "command.txt").write_text(command + "\n")
    print(f"score: {format_summary(summary)}")
    print(f"episodes written to {out / 'episodes.csv'}")


def _verify(args: argparse.Namespace, command: str) -> int:
    from cr_bench.evaluation import print_episode
    from cr_bench.verify import verify

    verification = verify(args.run_dir, args.episodes, args.track_seed_start, args.margin, on_episode=print_episode)
    print(verification.report())
    return 0 if verification.passed else 1


def _record(args: argparse.Namespace, command: str) -> None:
    from cr_bench.recording import record
    from cr_bench.rundir import RunDir

    run = RunDir(args.run_dir)
    config = run.read_config()
    _writable_dir(args.out.parent)
    model = load_model(config.agent, str(run.require_model()))
    track_seed = config.eval.track_seed_start if args.track_seed is None else args.track_seed
    backend = config.eval.backend if args.backend is None else args.backend
    result = record(model, config.env, args.out, track_seed, fps=args.fps, every=args.every, backend=backend)
    Path(args.out).with_name(Path(args.out).name + ".txt").write_text(command + "\n")
    print(f"track {track_seed}: return {result.true_return:.1f} in {result.length} frames; wrote {args.out}")


def _publish(args: argparse.Namespace, command: str) -> None:
    from cr_bench.publish import publish

    if not args.name or "/" in args.name or args.name.startswith("."):
        raise CrBenchError(f"--name must be a plain folder name, got {args.name!r}")
    out = publish(
        args.run_dir,
        args.results_dir / "models" / args.name,
        episodes=args.episodes,
        curve_points=args.curve_points,
        curve_episodes=args.curve_episodes,
        command=command,
        n_envs=args.n_envs,
        force=args.force,
    )
    print(f"check it with: cr-bench verify {out}")


def _tune(args: argparse.Namespace, command: str) -> None:
    from cr_bench.tuning import TuneSettings, base_config, counted, tune

    base = base_config(args.agent, args.config)
    given: dict[str, Any] = {
        name: str(value) if isinstance(value, Path) else value
        for name, value in fields_given(args, tune_flags()).items()
    }
    settings = TuneSettings(agent=args.agent, **given, base_config=base, command=command)
    study = tune(settings, n_jobs=args.n_jobs)
    print((settings.out_dir / "summary.md").read_text())
    print(f"study {settings.study_name}: {len(counted(study))} trials; outputs in {settings.out_dir}")


def _compare(args: argparse.Namespace, command: str) -> None:
    from cr_bench.baselines import BASELINES
    from cr_bench.compare import SuiteEval, compare_runs, compare_suite, merge_settings

    if bool(args.suite) == bool(args.run_dirs):
        raise CrBenchError("give either --suite FILE or one or more RUN_DIRs")
    if args.suite:
        summary = compare_suite(args.suite, args.workers, args.results_dir, args.runs_dir, command)
    else:
        settings = merge_settings(
            SuiteEval(), episodes=args.episodes, track_seed_start=args.track_seed_start, backend=args.backend
        )
        if settings.backend != "gymnasium":
            settings.randomized = False
        out = args.results_dir / args.name
        summary = compare_runs(args.run_dirs, settings, out, list(BASELINES), command)
    print(summary.read_text())
    print(f"written {summary.parent}")


def _report(args: argparse.Namespace, command: str) -> None:
    from cr_bench.report import build_report

    print(f"written {build_report(args.results_dir, command)}")


def _bench(args: argparse.Namespace, command: str) -> None:
    from cr_bench.bench import run_bench, write_results

    rows = run_bench(args.raw_frames, args.train_frames, reference=not args.no_reference)
    csv_path, md_path = write_results(rows, args.out_dir, command)
    print(md_path.read_text())
    print(f"written {md_path} and {csv_path}")


def _interrupt(signum: int, frame: Any) -> NoReturn:
    """SIGTERM acts as Ctrl-C: worker processes get SIGINT (they save), then this one stops."""
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)  # type: ignore[arg-type]
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    command = shlex.join(["cr-bench", *argv])
    # A run in the background (where the shell ignores SIGINT) or under a job scheduler is
    # stopped with SIGTERM: it saves like Ctrl-C does. Only the main thread may set handlers.
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if on_main_thread:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.handler(args, command) or 0)
    except CrBenchError as error:
        print(f"cr-bench: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file or folder the user named (or the disk) failed us: no traceback
        print(f"cr-bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cr-bench: interrupted; what was written is kept (continue a training with --resume)", file=sys.stderr)
        return 130
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
