"""The forecast rung's runs: chosen shapes at one budget C, built from the study's own sweep.

``rung_sweep(spec, shapes, flops)`` returns an ``IsoFlopSweep`` named ``<spec.name>-rung`` that
trains each shape (``(n_layers, d_model, n_heads, d_mlp)``, e.g. from
``analysis.rung.rung_members``) at the single budget ``flops`` with everything else taken from
``spec``: the base RunConfig (data, batch, optimizer, schedule over the run's own length,
evaluation, wandb), the WSD branching (a branched sweep's rung is a WSD run of its own length,
a trunk and one cooldown, like the points it is judged against), the LR rule, the first seed,
the shape rule, the N convention and the data repetition limits (``allow_repetition``,
``max_epochs``, checked when the rung is planned).
``n_tokens`` is solved as in every IsoFLOP sweep, so the run spends C counted FLOPs.

The runs live in ``<runs_dir>/<spec.name>-rung/``, beside (not inside) the sweep's folder, so
a report of the sweep never fits the rung it is judged by. Relaunching is idempotent as for any
sweep: a finished rung is not trained again.
"""

from __future__ import annotations

from collections.abc import Sequence

from sweeps.spec import IsoFlopSweep, SweepSpec, SweepSpecError


def rung_name(spec: SweepSpec) -> str:
    """The rung's sweep name: ``<spec.name>-rung``."""
    return f"{spec.name}-rung"


def rung_sweep(
    spec: SweepSpec, shapes: Sequence[tuple[int, int, int, int]], flops: float
) -> IsoFlopSweep:
    """An IsoFLOP sweep of ``shapes`` at the one budget ``flops`` (FLOPs), from ``spec``.

    Args:
        spec: the study's sweep (any family); its fields above are reused.
        shapes: ``(n_layers, d_model, n_heads, d_mlp)`` per model, all with one MLP ratio.
        flops: the rung's budget C (counted FLOPs, Chinchilla App. F without the embedding).

    Raises:
        SweepSpecError: no shapes, or shapes whose ``d_mlp / d_model`` differ or are not
            whole numbers (an IsoFLOP sweep has one ``mlp_ratio``).
    """
    if not shapes:
        raise SweepSpecError("the forecast rung needs at least one shape")
    ratios = {d_mlp / d_model for _, d_model, _, d_mlp in shapes}
    if len(ratios) != 1 or not float(next(iter(ratios))).is_integer():
        raise SweepSpecError(
            f"rung shapes must share one whole d_mlp/d_model ratio, got {sorted(ratios)}"
        )
    return IsoFlopSweep(
        name=rung_name(spec),
        base=spec.base,
        seeds=spec.seeds[:1],
        lr_rule=spec.effective_lr_rule,
        shape_rule=spec.shape_rule,
        n_convention=spec.n_convention,
        allow_repetition=spec.allow_repetition,
        max_epochs=spec.max_epochs,
        branching=spec.branching,
        mlp_ratio=int(next(iter(ratios))),
        budgets=(float(flops),),
        shapes=tuple((n_layers, d_model, n_heads) for n_layers, d_model, n_heads, _ in shapes),
        description=f"forecast rung of {spec.name}: {len(shapes)} model(s) at C={flops:.3g}",
    )
