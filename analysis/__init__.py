"""analysis: what the runs mean. Reads run directories or tables; never imports torch.

Modules: ``curves`` (loss-curve laws; with ``curve_data``, ``curve_predict``, ``curve_eval``,
``curve_plots``, ``curve_cli``), ``load`` (load_runs, load_curves, select_points, RunsWarning),
``runs_table``
(load_table: CSV/JSONL of runs, errors naming file/line/column), ``inputs`` (N conventions, C
formulas, input checks), ``estimates`` (Estimate, percentile CIs, the fits' JSON round trip),
``fits`` (package: ``frontier`` = fit_envelope [approach 1], fit_isoflop [approach 2];
``kaplan`` = fit_kaplan; ``loader`` = fit_from_dict), ``parametric`` (package: ``law`` =
approach 3's law, ParametricFit, pinned parameters, identifiability; ``solver`` = the fast
4500-start fit_parametric and its bootstrap), ``query`` (compute_optimal, optimal_tokens,
flops_for_loss), ``forecast`` (predict_loss: loss at any (N, D) with CI and prediction
interval), ``backtest`` (forecasts scored on held-out budgets), ``sensitivity`` (the answer
under every analysis choice), ``plots``, ``report`` (make_report), ``fit_inputs`` (files -> fit
inputs, run_fit), ``report_dir`` (replace an old report, keep the user's files), ``synthetic``
(run directories and simulated sweeps from a known law), ``cli``.

``analysis.predict_loss`` is ``analysis.forecast.predict_loss`` (imported on first use).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "predict_loss":
        from analysis.forecast import predict_loss

        return predict_loss
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
