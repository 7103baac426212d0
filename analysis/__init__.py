"""analysis: what the runs mean. Reads run directories or tables; never imports torch.

Modules: ``load`` (load_runs, load_curves, select_points, RunsWarning), ``table`` (load_table:
CSV/JSONL of runs, errors naming file/line/column), ``fits``
(fit_kaplan, fit_envelope [approach 1], fit_isoflop [approach 2], fit_parametric [approach 3],
fit_from_dict), ``parametric`` (the fast 4500-start fit, its bootstrap, pinned parameters and
identifiability), ``query`` (compute_optimal, optimal_tokens, flops_for_loss), ``forecast``
(predict_loss: loss at any (N, D) with CI and prediction interval), ``backtest`` (forecasts scored
on held-out budgets), ``sensitivity`` (the answer under every analysis choice), ``plots``,
``report`` (make_report), ``pipeline`` (files -> fit inputs), ``report_dir`` (replace an old
report, keep the user's files), ``synthetic`` (run directories and simulated sweeps from a known
law), ``cli``.

``analysis.predict_loss`` is ``analysis.forecast.predict_loss`` (imported on first use).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "predict_loss":
        from analysis.forecast import predict_loss

        return predict_loss
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
