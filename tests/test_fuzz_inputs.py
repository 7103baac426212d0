"""Property-based (hypothesis) tests: hostile tables and fit inputs end in a clear ValueError
raised by our own code (naming file, line and column for tables) or in a fit, never in a
traceback from deep inside pandas, numpy or scipy.

Settings are small (tens of examples, no deadline) so the file runs in seconds; the seed is
derandomized so CI is reproducible.
"""

from __future__ import annotations

import csv
import json
import math
import os
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from analysis.fits import fit_envelope, fit_isoflop, fit_kaplan, fit_power_law
from analysis.parametric import fit_parametric
from analysis.runs_table import load_table

REPO = Path(__file__).resolve().parents[1]
# SCALING_FUZZ_EXAMPLES=2000 runs a long, randomized hunt; the default is small and derandomized
_LONG = int(os.environ.get("SCALING_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=_LONG or 40,
    deadline=None,
    derandomize=not _LONG,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONV = dict(n_convention="total", flop_formula="6nd")


def raised_by_us(err: BaseException) -> bool:
    """The error's raise site is in this repository's analysis room (not pandas/numpy/scipy)."""
    last = traceback.extract_tb(err.__traceback__)[-1]
    return Path(last.filename).resolve().is_relative_to(REPO / "analysis")


def assert_clear(err: BaseException) -> None:
    assert isinstance(err, ValueError), f"{type(err).__name__}: {err}"
    assert raised_by_us(err), "".join(traceback.format_exception(err))
    assert "\n" not in str(err) and len(str(err)) < 600, str(err)


# ---- cells and column names ----------------------------------------------------------------
# Most cells are good numbers and a few are corrupted, so that examples reach both the errors
# and the successful loads (hypothesis.event counts both; see --hypothesis-show-statistics).

good_number = st.floats(min_value=1e-3, max_value=1e12, allow_nan=False)
bad_number = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, -3e9])
text_cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=6
)
bad_cell = st.one_of(bad_number.map(repr), text_cell, st.just(""), st.just("1,000"))
column_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=8
)


def _corrupt(rows: list[list], damage: list[tuple[int, int, object]]) -> list[list]:
    rows = [list(r) for r in rows]
    for i, j, v in damage:
        if rows:
            rows[i % len(rows)][j % len(rows[0])] = v
    return rows


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@FUZZ
@given(
    names=st.one_of(
        st.lists(column_name, min_size=3, max_size=3, unique=True),
        st.lists(column_name, min_size=3, max_size=3),  # may repeat a name
    ),
    rows=st.lists(
        st.lists(good_number.map(lambda x: f"{x:.6g}"), min_size=3, max_size=3), max_size=8
    ),
    damage=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2), bad_cell), max_size=2),
    use_c=st.booleans(),
    drop=st.sampled_from([0, 0, 0, 1, 3, 9]),
)
@example(names=["N", "L", "D"], rows=[], damage=[], use_c=False, drop=0)  # header only
@example(names=["N", "N", "D"], rows=[["1", "2", "3"]], damage=[], use_c=False, drop=0)
def test_fuzzed_csv_loads_or_names_file_line_and_column(tmp_path, names, rows, damage, use_c, drop):
    path = tmp_path / "runs.csv"
    _write_csv(path, names, _corrupt(rows, damage))
    n_col, loss_col, x_col = names
    kw = dict(c_col=x_col) if use_c else dict(d_col=x_col)
    try:
        t = load_table(path, n_col=n_col, loss_col=loss_col, drop_highest_losses=drop, **kw)
    except ValueError as e:
        event("error: " + str(e).replace(str(path), "FILE")[:40])
        assert_clear(e)
        assert str(path) in str(e)
        msg = str(e)
        if "is not a number" in msg or "power laws need" in msg:
            assert "line " in msg and "column " in msg  # names the cell
        return
    event("loaded")
    # loaded: every value the fits see is finite and positive, one row per kept data row
    assert len(t) == len(rows) - drop
    for col in ("n_params_total", "n_tokens", "flops", "flops_6nd", "val/loss"):
        v = t[col].to_numpy(float)
        assert np.all(np.isfinite(v) & (v > 0)), col


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.fixed_dictionaries({"N": good_number, "D": good_number, "loss": good_number}).map(
                json.dumps
            ),
            st.fixed_dictionaries(
                {"N": st.one_of(good_number, bad_number, text_cell)},
                optional={
                    "D": st.one_of(good_number, bad_number, text_cell, st.none()),
                    "loss": st.one_of(good_number, st.booleans(), st.lists(good_number)),
                },
            ).map(json.dumps),
            text_cell,  # garbage lines
            st.sampled_from(["[1, 2]", "3", "null", '{"N": 1', ""]),
        ),
        min_size=0,
        max_size=6,
    )
)
@example(lines=[])  # empty file
def test_fuzzed_jsonl_loads_or_names_file_and_line(tmp_path, lines):
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    try:
        t = load_table(path, n_col="N", loss_col="loss", d_col="D")
    except ValueError as e:
        event("error: " + str(e).replace(str(path), "FILE")[:40])
        assert_clear(e)
        assert str(path) in str(e)
        return
    event("loaded")
    assert len(t) >= 1 and np.all(t["n_tokens"].to_numpy(float) > 0)


def test_empty_and_blank_files_are_clear_errors(tmp_path):
    for name, text in (("a.csv", ""), ("b.csv", "\n\n  \n"), ("c.jsonl", ""), ("d.json", "")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ValueError, match=str(path)) as info:
            load_table(path, n_col="N", loss_col="L", d_col="D")
        assert_clear(info.value)
    bad = tmp_path / "ragged.csv"
    bad.write_text("N,L,D\n1e8,3.0,1e9\n2e8,2.9\n")
    with pytest.raises(ValueError, match=r"ragged.csv, line 3: 2 fields, but the header has 3"):
        load_table(bad, n_col="N", loss_col="L", d_col="D")
    txt = tmp_path / "cell.csv"
    txt.write_text("N,L,D\n1e8,3.0,1e9\n2e8,abc,2e9\n")
    with pytest.raises(ValueError, match=r"cell.csv, line 3, column 'L' \(loss\): 'abc'"):
        load_table(txt, n_col="N", loss_col="L", d_col="D")
    neg = tmp_path / "neg.jsonl"
    neg.write_text('{"N": 1e8, "L": 3, "D": 1e9}\n\n{"N": -5, "L": 3, "D": 1e9}\n')
    with pytest.raises(ValueError, match=r"neg.jsonl, line 3, column 'N' \(N\): -5.0"):
        load_table(neg, n_col="N", loss_col="L", d_col="D")
    js = tmp_path / "broken.jsonl"
    js.write_text('{"N": 1e8, "L": 3, "D": 1e9}\n{"N": 2e8, "L": 3,, "D": 1e9}\n')
    with pytest.raises(ValueError, match=r"broken.jsonl, line 2, column 19: not valid JSON"):
        load_table(js, n_col="N", loss_col="L", d_col="D")


# ---- fit inputs ----------------------------------------------------------------------------

extreme = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


def _columns(n_min: int, n_max: int, pool_size: int | None = None):
    """(N, D, C, L) lists of equal length: a noisy power law, sometimes extreme or corrupted.

    With ``pool_size``, the rows are copies of a few points (duplicates).
    """

    def build(n, logs, damage, scale_extreme):
        rows = []
        for ln, ld, noise in logs[:n]:
            N, D = 10.0**ln, 10.0**ld
            rows.append([N, D, 6 * N * D, 1.7 + 400 / N**0.34 + 400 / D**0.28 + noise])
        for i, j, v in damage:
            if rows:
                rows[i % len(rows)][j] = v
        if scale_extreme is not None and rows:
            rows[0] = [scale_extreme] * 4
        return [list(col) for col in zip(*rows, strict=True)] if rows else [[], [], [], []]

    log_row = st.tuples(
        st.floats(3, 12), st.floats(4, 13), st.floats(-0.05, 0.05, allow_subnormal=False)
    )
    logs = st.lists(log_row, min_size=n_max, max_size=n_max)
    if pool_size is not None:  # duplicates: many copies of a few points
        logs = st.lists(log_row, min_size=1, max_size=pool_size).flatmap(
            lambda pool: st.lists(st.sampled_from(pool), min_size=n_max, max_size=n_max)
        )
    damage = st.lists(
        st.tuples(st.integers(0, n_max), st.integers(0, 3), st.one_of(bad_number, extreme)),
        max_size=2,
    )
    return st.builds(build, st.integers(n_min, n_max), logs, damage, st.one_of(st.none(), extreme))


def _isoflop_columns():
    """(N, D, C, L) of an IsoFLOP sweep (3-4 budgets x 3-6 sizes) from the Chinchilla law, with
    noise, an optional copy of every row (duplicates) and up to two corrupted cells."""

    def build(log_c0, n_budgets, n_sizes, noise, dup, damage):
        rows = []
        for k in range(n_budgets):
            C = 10.0 ** (log_c0 + k)
            n_opt = 0.6 * (C / 6) ** 0.5
            for j, f in enumerate(np.geomspace(1 / 8, 8, n_sizes)):
                N = n_opt * f
                D = C / (6 * N)
                L = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28 + noise[(k * 6 + j) % len(noise)]
                rows.append([N, D, C, L])
        if dup:
            rows = rows + [list(r) for r in rows]
        for i, j, v in damage:
            rows[i % len(rows)][j] = v
        return [list(col) for col in zip(*rows, strict=True)]

    return st.builds(
        build,
        st.floats(15, 19),
        st.integers(1, 4),
        st.integers(2, 6),
        st.lists(st.floats(-0.02, 0.02, allow_subnormal=False), min_size=1, max_size=24),
        st.booleans(),
        st.lists(
            st.tuples(st.integers(0, 40), st.integers(0, 3), st.one_of(bad_number, extreme)),
            max_size=1,
        ),
    )


def _fit_or_clear_error(fit_fn, *args, **kwargs):
    with np.errstate(all="ignore"):
        try:
            return fit_fn(*args, **kwargs)
        except ValueError as e:
            assert_clear(e)
            return None
        except Exception as e:  # anything else is a bug: show where it came from
            raise AssertionError("".join(traceback.format_exception(e))) from None


@FUZZ
@given(
    cols=st.one_of(_columns(0, 12), _columns(6, 12, pool_size=3), _isoflop_columns()),
    n_boot=st.sampled_from([0, 0, 4]),
)
@example(  # found by fuzzing: an N of 1e-254 made math.exp overflow inside the approach-2 law
    cols=[
        [1.1756366747722326e-254, 7745966.692, 61967733.54, 3061862.178, 24494897.43, 195959179.4],
        [172132593.2, 21516574.15, 2689571.768, 544331054.0, 68041381.74, 8505172.718],
        [1e15, 1e15, 1e15, 1e16, 1e16, 1e16],
        [7.467240235, 7.171548378, 9.105700328, 5.694047387, 5.571681438, 7.018140374],
    ],
    n_boot=0,
)
def test_fuzzed_frontier_and_kaplan_fits(cols, n_boot):
    N, D, C, L = cols
    boot = dict(CONV, n_bootstrap=n_boot)
    fit = _fit_or_clear_error(fit_isoflop, N, D, C, L, **boot)
    event("isoflop: fit" if fit is not None else "isoflop: error")
    if fit is not None:
        assert fit.n_optima_used >= 2 and math.isfinite(fit.a) and math.isfinite(fit.b)
    fit = _fit_or_clear_error(fit_kaplan, N, D, C, L, **boot)
    event("kaplan: fit" if fit is not None else "kaplan: error")
    if fit is not None:
        assert any(law is not None for law in (fit.L_N, fit.L_D, fit.L_C))
    _fit_or_clear_error(fit_power_law, N, L, "N")
    # approach 1 on the same rows read as curves: run k holds every third row
    run_id = [f"run{i % 3}" for i in range(len(N))]
    fit = _fit_or_clear_error(fit_envelope, run_id, N, D, C, L, n_bins=5, **boot)
    event("envelope: fit" if fit is not None else "envelope: error")
    if fit is not None:
        assert math.isfinite(fit.a) and math.isfinite(fit.b)


@settings(FUZZ, max_examples=max(15, _LONG // 20))
@given(cols=st.one_of(_columns(0, 9), _columns(6, 9, pool_size=4)))
@example(cols=[[1e8] * 20, [2e9] * 20, [1.2e18] * 20, [3.0] * 20])  # 20 copies of one point
def test_fuzzed_parametric_fit(cols):
    N, D, _, L = cols
    fit = _fit_or_clear_error(fit_parametric, N, D, L, **CONV)
    event("parametric: fit" if fit is not None else "parametric: error")
    if fit is not None:
        assert len({(n, d) for n, d in zip(N, D, strict=True)}) >= 6  # distinct points
        assert math.isfinite(fit.objective)
        for k in ("E", "A", "B", "alpha", "beta"):
            assert math.isfinite(getattr(fit, k)), k


def test_copies_of_one_point_are_refused_by_every_fit():
    N, D, L = [1e8] * 30, [2e9] * 30, [3.0] * 30
    C = [6 * 1e8 * 2e9] * 30
    for fn, args in (
        (fit_parametric, (N, D, L)),
        (fit_isoflop, (N, D, C, L)),
        (fit_kaplan, (N, D, C, L)),
    ):
        with pytest.raises(ValueError, match=r"distinct \(N, D\) points, got 1 distinct among 30"):
            fn(*args, **CONV)
    with pytest.raises(ValueError, match="distinct N points, got 1"):
        fit_power_law(N, L, "N")


# ---- run directories: fuzzed metrics.jsonl and summary.json --------------------------------


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    from analysis.synthetic import write_synthetic_sweep

    return write_synthetic_sweep(tmp_path_factory.mktemp("fuzz_runs"), budgets=(1e14,), n_models=3)


junk_line = st.one_of(
    text_cell,
    st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["[1]", "3", "null", '"s"', '{"step": ', "{}"]),
)


@FUZZ
@given(
    junk=st.lists(st.tuples(st.integers(0, 30), junk_line), min_size=1, max_size=4),
    summary_cut=st.one_of(st.none(), st.integers(0, 400)),
    summary_junk=st.one_of(st.none(), junk_line),
)
def test_fuzzed_run_directory_files_never_stop_the_others(
    small_sweep, junk, summary_cut, summary_junk
):
    import warnings

    from analysis.load import RunsWarning, load_curves, load_runs

    run = sorted(p for p in small_sweep.iterdir() if p.is_dir())[0]
    metrics, summary = run / "metrics.jsonl", run / "summary.json"
    saved = metrics.read_text(), summary.read_text()
    try:
        lines = saved[0].splitlines(keepends=True)
        for at, text in junk:
            lines.insert(at % (len(lines) + 1), text.replace("\n", " ").replace("\r", " ") + "\n")
        metrics.write_text("".join(lines), encoding="utf-8", errors="surrogateescape")
        if summary_junk is not None:
            summary.write_text(summary_junk, encoding="utf-8", errors="surrogateescape")
        elif summary_cut is not None:
            summary.write_text(saved[1][:summary_cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RunsWarning)
            runs = load_runs(small_sweep)
            curves = load_curves(small_sweep)
        assert len(runs) == 3  # every run listed
        others = runs[runs["run_name"] != run.name]
        assert (others["status"] == "complete").all()
        assert set(others["run_name"]) <= set(curves["run_name"])
        me = runs[runs["run_name"] == run.name].iloc[0]
        event(f"summary: {me['status']}")
        if me["status"] == "damaged":
            assert "summary.json" in me["problem"]
    finally:
        metrics.write_text(saved[0])
        summary.write_text(saved[1])
