"""The spec layer: every input cr-bench reads, typed, resolved and validated in one place.

A newcomer follows a YAML file or a command line through these modules, then out of them:

- :mod:`cr_bench.spec.loader`: YAML and mappings -> dataclasses (unknown keys and wrong
  types named by their key path), schema-driven merging of partial mappings;
- :mod:`cr_bench.spec.run`: :class:`~cr_bench.spec.run.RunConfig` (env pipeline, policy,
  algorithm, evaluation settings), the track-seed ranges and the checks on each section;
- :mod:`cr_bench.spec.agents`: the agent registry and :func:`~cr_bench.spec.agents.resolve_config`
  (defaults -> ``--config`` file -> ``--set`` -> flags, validated);
- :mod:`cr_bench.spec.suite`: ``cr-bench compare`` suites (``benchmarks/*.yaml``);
- :mod:`cr_bench.spec.tune`: search spaces and :class:`~cr_bench.spec.tune.TuneSettings`;
- :mod:`cr_bench.spec.commands`: the option dataclasses the CLI is generated from.

Then ``cr_bench.envs`` builds the env, ``cr_bench.agents`` the model, ``cr_bench.training``
trains, ``cr_bench.evaluation`` scores, and ``compare``/``tune`` orchestrate them.
"""
