"""sweeps: WHAT to run and WHERE (DESIGN.md).

Sweep definitions (``sweeps/defs/<name>.py`` with ``sweep() -> spec``) expand into fully
resolved ``RunConfig``s and run on an executor (debug | local | slurm), idempotently.

- ``sweeps.spec``: ``IsoFlopSweep``, ``GridSweep``, ``LadderSweep``, ``run_name``, ``PlanError``.
- shape rules (``AspectRatioRule``, ``AspectRatiosRule``, ``ChinchillaGridRule``,
  ``shape_rule_from_dict``) live in ``scaling.shapes`` (pure; analysis uses them too);
  ``sweeps.shapes`` re-exports them for definitions written before the move.
- ``sweeps.lr``: ``WidthScaledLR``, ``MupLR``, ``FixedLR``, ``LRTable``.
- ``sweeps.branching``: ``WsdBranches`` (``branching=`` of any spec: WSD trunks and cooldown
  branches), ``check_lineage``.
- ``sweeps.plan.plan(spec) -> list[PlannedRun]``, ``plan_totals``;
  ``sweeps.registry.load_sweep(name_or_path)``.
- ``sweeps.launch.launch(spec, runs_dir, executor=..., ...) -> LaunchResult``.
- ``sweeps.execute.run_one(cfg_dict, run_dir)`` (the per-run function; lock + error.txt) and
  ``SlurmRun`` (submitit Checkpointable).
- ``sweeps.status.sweep_status(spec, runs_dir)``; ``sweeps.cli`` registers ``scaling sweep``.

Nothing is imported here, so ``import sweeps.spec`` stays light (no torch, no submitit).
"""
