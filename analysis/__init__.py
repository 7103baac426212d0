"""analysis: what the runs mean. Reads run directories or tables; never imports torch.

Modules: ``load`` (load_runs, load_curves, select_points, RunsWarning), ``table`` (load_table:
CSV/JSONL of runs, errors naming file/line/column), ``fits``
(fit_kaplan, fit_envelope [approach 1], fit_isoflop [approach 2], fit_parametric [approach 3],
fit_from_dict), ``parametric`` (the fast 4500-start fit and its bootstrap), ``query``
(compute_optimal, optimal_tokens, flops_for_loss), ``plots``, ``report`` (make_report),
``pipeline`` (files -> fit inputs), ``report_dir`` (replace an old report, keep the user's
files), ``synthetic`` (run directories from a known law), ``cli``.
"""
