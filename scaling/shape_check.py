"""Shape check before compute is spent: points too shallow, too thin or too wide, and depth mixes.

Kaplan et al. 2020 (Sec. 3.1, Figs. 5 and 6) find the loss depends on N and only weakly on shape,
"only models with fewer than 2 layers or with extreme depth-to-width ratios deviate
significantly from the trend". A 1-layer transformer cannot form induction heads (Olsson et al.
2022, "In-context learning and induction heads"). A fit of L(N, D) (or of N_opt(C)) that mixes
1-layer points at small budgets with deeper points at large ones fits two families as one, and
bends its extrapolation. These checks are pure (no torch, no files): ``scaling sweep plan`` runs
them on the planned points and ``sweep forecast`` on the rung against the fitted points.

``ASPECT_RANGE`` is the aspect ratio d_model / n_layers over which Kaplan et al. 2020 Fig. 5
(middle) shows the loss within a few percent of its best at fixed N: their (n_layers, d_model) =
(6, 4288) model (aspect 715) is within 3% of (48, 1600) (aspect 33), and the curves rise below
aspect ~10. This range is our reading of that figure; outside it the shape trend is unmeasured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MIN_LAYERS = 2
ASPECT_RANGE = (10.0, 800.0)


@dataclass(frozen=True)
class PointShape:
    """One fitted point's shape.

    Attributes:
        name: the point's label (run name or shape key), used in warnings.
        flops_budget: its IsoFLOP budget C (FLOPs).
        n_layers: transformer blocks.
        d_model: residual width.
    """

    name: str
    flops_budget: float
    n_layers: int
    d_model: int

    @property
    def aspect(self) -> float:
        """d_model / n_layers (Kaplan et al. 2020 Fig. 5's aspect ratio)."""
        return self.d_model / self.n_layers


def _names(points: list[PointShape], limit: int = 6) -> str:
    names = [p.name for p in points]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def shape_warnings(points: Iterable[PointShape]) -> list[str]:
    """One-line warnings about the planned (fitted) points' shapes; empty when all is well.

    Warns when points have fewer than ``MIN_LAYERS`` layers, an aspect ratio outside
    ``ASPECT_RANGE``, or when the budgets differ in kind: 1-layer points at one end of the
    budgets and not at the other (e.g. all 1-layer at the smallest, deeper at the largest).
    Depths 2 and 3 are one kind (Kaplan et al. 2020 Fig. 6 finds them on one trend).
    """
    pts = list(points)
    out: list[str] = []
    shallow = [p for p in pts if p.n_layers < MIN_LAYERS]
    if shallow:
        out.append(
            f"{len(shallow)} point(s) have fewer than {MIN_LAYERS} layers ({_names(shallow)}): "
            "Kaplan et al. 2020 Fig. 6 finds such models off the shared trend"
        )
    lo, hi = ASPECT_RANGE
    odd = [p for p in pts if not lo <= p.aspect <= hi]
    if odd:
        out.append(
            f"{len(odd)} point(s) have d_model/n_layers outside [{lo:g}, {hi:g}] "
            f"({_names(odd)}): Kaplan et al. 2020 Fig. 5 measured the shape trend only inside it"
        )
    budgets = sorted({p.flops_budget for p in pts})
    if len(budgets) >= 2:  # kind: 1-layer (no induction heads) or deeper (Olsson et al. 2022)
        ends = [[p for p in pts if p.flops_budget == b] for b in (budgets[0], budgets[-1])]
        kinds = [{p.n_layers >= MIN_LAYERS for p in end} for end in ends]
        if kinds[0] != kinds[1]:
            depths = [sorted({p.n_layers for p in end}) for end in ends]
            out.append(
                f"the budgets differ in kind: depths {depths[0]} at C = {budgets[0]:.3g}, "
                f"{depths[1]} at C = {budgets[-1]:.3g} (1-layer points at one end only); a law "
                "over N and D mixes the two"
            )
    return out


def outside_fitted_range(rung: PointShape, fitted: Iterable[PointShape]) -> list[str]:
    """Warnings when ``rung``'s depth or aspect ratio lies outside the fitted points' range."""
    pts = list(fitted)
    if not pts:
        return []
    out = []
    depths = [p.n_layers for p in pts]
    if not min(depths) <= rung.n_layers <= max(depths):
        out.append(
            f"the rung {rung.name} has {rung.n_layers} layers, outside the fitted depths "
            f"{min(depths)}-{max(depths)}: its loss is an extrapolation in shape as well as in C"
        )
    aspects = [p.aspect for p in pts]
    if not min(aspects) <= rung.aspect <= max(aspects):
        out.append(
            f"the rung {rung.name} has d_model/n_layers = {rung.aspect:.3g}, outside the fitted "
            f"range {min(aspects):.3g}-{max(aspects):.3g}"
        )
    return out
