"""Point-optimality check: did an LR variant of a fitted point beat it by more than seed noise?

A fitted point is only as good as its learning rate: a point trained at a poor LR sits above its
budget's true profile and bends the fit. When a sweep trains LR variants of a point (e.g. 0.5x and
2x the rule's LR for the best point of the smallest and largest budgets, issue 25), this check
compares them with the point itself.

Rules (torch-free, from the runs on disk): a point (``point_key``) is checked when it has an odd
number >= 3 of distinct learning rates; the point's own LR is their median (the rule's LR, with
variants on either side); its loss is the seed mean there. The **seed spread** is the largest
range of final loss across seeds at one LR among all points with >= 2 seeds (a conservative
noise floor). A variant "beat the point" when its seed-mean loss is lower by more than the seed
spread. ``analysis.load.select_points`` already fits each point at its best LR; this check says
whether that choice mattered.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def lr_optimality(runs: pd.DataFrame, loss_col: str = "val/loss") -> dict[str, Any]:
    """The LR-variant check over every point with an odd number >= 3 of LRs.

    Args:
        runs: ``analysis.load.load_runs`` rows (every run, not only the selected ones).
        loss_col: final-loss column (nats/token).

    Returns:
        ``{"seed_spread", "points": [{"point_key", "flops_budget", "lr", "loss",
        "best_variant_lr", "best_variant_loss", "gain", "beaten"}], "text"}``; ``points`` is
        empty (and ``text`` says so) when no point has LR variants.
    """
    need = {"point_key", "lr", "seed", "status", loss_col}
    if not need <= set(runs.columns):
        return {"seed_spread": None, "points": [], "text": "no LR check: columns missing"}
    ok = runs[(runs["status"] == "complete") & np.isfinite(runs[loss_col].astype(float))]
    if "role" in ok:
        ok = ok[ok["role"] != "trunk"]
    ranges = [
        float(g[loss_col].max() - g[loss_col].min())
        for _, g in ok.groupby(["point_key", "lr"])
        if g["seed"].nunique() >= 2
    ]
    spread = max(ranges) if ranges else None
    points = []
    for key, g in ok.groupby("point_key"):
        by_lr = g.groupby("lr")[loss_col].mean().sort_index()
        if len(by_lr) < 3 or len(by_lr) % 2 == 0:
            continue
        own = by_lr.index[len(by_lr) // 2]
        variants = by_lr.drop(own)
        best = variants.idxmin()
        gain = float(by_lr[own] - variants[best])
        points.append(
            {
                "point_key": key,
                "flops_budget": float(g["flops_budget"].iloc[0])
                if "flops_budget" in g
                else math.nan,
                "lr": float(own),
                "loss": float(by_lr[own]),
                "best_variant_lr": float(best),
                "best_variant_loss": float(variants[best]),
                "gain": gain,
                "beaten": None if spread is None else bool(gain > spread),
            }
        )
    if not points:
        text = "LR check: no point has LR variants (an odd number >= 3 of learning rates)."
    else:
        s = "unknown (no point has two seeds)" if spread is None else f"{spread:.4f} nats"
        lines = [
            f"{p['point_key']} at lr {p['lr']:.3g}: {p['loss']:.4f}; best variant lr "
            f"{p['best_variant_lr']:.3g}: {p['best_variant_loss']:.4f} (gain {p['gain']:+.4f}"
            + ("" if p["beaten"] is None else ", BEATEN" if p["beaten"] else ", within noise")
            + ")"
            for p in points
        ]
        beaten = [p["point_key"] for p in points if p["beaten"]]
        verdict = (
            f"a variant beat {', '.join(map(str, beaten))} by more than the seed spread"
            if beaten
            else "no variant beat its point by more than the seed spread"
        )
        text = f"LR check (seed spread {s}): {verdict}. " + "; ".join(lines) + "."
    return {"seed_spread": spread, "points": points, "text": text}
