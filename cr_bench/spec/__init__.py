"""The spec layer: every input cr-bench reads, typed, resolved and validated in one place.

A newcomer follows a YAML file or a command line through these modules, then out of them:

- :mod:`cr_bench.spec.loader`: YAML and mappings -> dataclasses (unknown keys and wrong
  types named by their key path), schema-driven merging of partial mappings;
- :mod:`cr_bench.spec.run`: :class:`~cr_bench.spec.run.RunConfig` (env pipeline, policy,
  algorithm, evaluation settings), the track-seed ranges and the checks on each section;
- :mod:`cr_bench.spec.suite`: ``cr-bench compare`` suites (``benchmarks/*.yaml``);
- :mod:`cr_bench.spec.tune`: search spaces and :class:`~cr_bench.spec.tune.TuneSettings`;
- :mod:`cr_bench.spec.commands`: the option dataclasses the CLI is generated from.

The agent registry (defaults -> ``--config`` file -> ``--set`` -> flags, validated) is
:mod:`cr_bench.agents.registry`. Then :mod:`cr_bench.envs` builds the env,
:mod:`cr_bench.agents` the model and trains it, :mod:`cr_bench.evaluation` scores,
:mod:`cr_bench.results` writes what people read, and :mod:`cr_bench.runner` runs many
trainings (compare, tune, bench).
"""
