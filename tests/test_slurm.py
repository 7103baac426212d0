"""Real Slurm (one node on localhost, scripts/slurm-local.sh): job arrays, preemption, relaunch.

Skipped with a reason when no cluster can be started, except under ``CI=true``, where that is a
failure. The session fixture prepends ``scripts/`` to PATH so submitit finds the ``sacct``
stand-in, and points ``SLURM_CONF`` at the cluster's config.
"""

import dataclasses
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_sweeps_launch import curve, file_mtimes, long_spec

from scaling import rundir
from sweeps.execute import run_lock
from sweeps.launch import LaunchError, launch
from sweeps.plan import plan
from sweeps.registry import load_sweep
from sweeps.slurm import live_slurm_jobs
from sweeps.status import sweep_status

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
SLURM_DIR = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/scaling-slurm"))
TIMEOUT_MIN = 60  # submitit treats signals as timeouts below ~50 min (docs/slurm-local.md #6)


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and any(
        s.startswith(("idle", "mix", "alloc")) for s in r.stdout.split()
    )


@pytest.fixture(scope="session")
def slurm_cluster():
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}")
    conf = SLURM_DIR / "etc" / "slurm.conf"
    if conf.exists() or "SLURM_CONF" not in os.environ:
        mp.setenv("SLURM_CONF", str(conf))
    started = False
    if not _cluster_answers():
        r = subprocess.run(
            ["bash", str(SCRIPTS / "slurm-local.sh"), "start"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        started = r.returncode == 0 and _cluster_answers()
        if not started:
            mp.undo()
            reason = f"no local Slurm cluster could be started: {r.stderr.strip()[-500:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true requires the Slurm tests to run; {reason}")
            pytest.skip(reason)
    yield SLURM_DIR
    if started:
        subprocess.run(
            ["bash", str(SCRIPTS / "slurm-local.sh"), "stop"], capture_output=True, timeout=120
        )
    mp.undo()


def _jobs_named(name: str) -> list[str]:
    r = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-n", name, "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout.split()


def test_smoke_job_array_completes_and_relaunch_submits_nothing(slurm_cluster, tmp_path):
    spec = load_sweep("smoke")
    t0 = time.perf_counter()
    result = launch(
        spec, tmp_path, executor="slurm", progress=False, timeout_min=TIMEOUT_MIN, poll_s=0.5
    )
    wall = time.perf_counter() - t0
    assert result.ok, [(o.run_name, o.status, o.error) for o in result.outcomes]
    assert result.counts == {"complete": len(plan(spec))}
    # ONE job array: every task shares the array's job id
    assert len({j.split("_")[0] for j in result.job_ids}) == 1
    assert len(result.job_ids) == len(plan(spec))
    for o in result.outcomes:
        assert rundir.run_state(o.run_dir) == "complete"
        print(
            f"slurm run {o.run_name}: wall {o.wall_s:.1f}s, run {o.run_wall_time_s:.2f}s, "
            f"overhead {o.wall_s - o.run_wall_time_s:.1f}s"
        )
    print(f"slurm smoke sweep: {wall:.1f}s")
    n_jobs = len(_jobs_named(f"sweep-{spec.name}"))
    before = file_mtimes(tmp_path)
    again = launch(spec, tmp_path, executor="slurm", progress=False, timeout_min=TIMEOUT_MIN)
    assert again.n_submitted == 0 and again.job_ids == []
    assert len(_jobs_named(f"sweep-{spec.name}")) == n_jobs  # nothing new reached Slurm
    assert file_mtimes(tmp_path) == before


def _preempt(job, timeout_s: float = 60) -> None:
    # Preemption as Slurm does it and as submitit's job._interrupt() sends it: SIGTERM, then
    # USR2. _interrupt() fires both at once, and Slurm may deliver them in either order; when USR2
    # wins, the late SIGTERM kills the `scontrol requeue` that submitit's handler is running and
    # the job ends instead of requeueing (seen once in CI). So wait for SIGTERM to land first.
    subprocess.check_call(["scancel", job.job_id, "--signal", "SIGTERM"])
    deadline = time.monotonic() + timeout_s
    log = Path(job.paths.stderr)
    while "Bypassing signal SIGTERM" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the job never received SIGTERM"
        time.sleep(0.05)
    subprocess.check_call(["scancel", job.job_id, "--signal", "USR2"])


def test_preempted_job_is_requeued_and_resumes_the_same_curve(slurm_cluster, tmp_path, tiny_corpus):
    spec = long_spec(tiny_corpus, name="preempt", n_steps=1000)
    (run,) = plan(spec)
    ref = launch(spec, tmp_path / "ref", executor="debug", progress=False)
    assert ref.ok
    result = launch(
        spec,
        tmp_path / "slurm",
        executor="slurm",
        progress=False,
        wait=False,
        timeout_min=TIMEOUT_MIN,
    )
    (job,) = result.jobs
    run_dir = tmp_path / "slurm" / "preempt" / run.run_name
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rows = rundir.read_metrics(run_dir)
        if (run_dir / rundir.CHECKPOINT).exists() and rows and rows[-1]["step"] >= 100:
            break
        assert not job.done(), "the job ended before it could be preempted"
        time.sleep(0.05)
    else:
        pytest.fail("the Slurm job never got going")
    step_at_interrupt = rows[-1]["step"]
    assert step_at_interrupt < run.config.n_steps
    _preempt(job)
    deadline = time.monotonic() + 240
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.done(), "the requeued job did not finish"
    outcome = job.result()
    assert outcome.status == "complete"
    # requeued (not restarted from scratch by hand): Slurm counts a restart of the same job id
    info = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True)
    assert "Restarts=1" in info.stdout, info.stdout
    log = Path(job.paths.stderr).read_text() + Path(job.paths.stdout).read_text()
    assert "checkpoint" in log.lower() or "requeu" in log.lower()
    resumed = curve(run_dir)
    steps = [r["step"] for r in resumed]
    assert steps == sorted(set(steps)) and steps[-1] == run.config.n_steps  # no duplicated rows
    assert resumed == curve(tmp_path / "ref" / "preempt" / run.run_name)


def test_pending_jobs_are_not_resubmitted(slurm_cluster, tmp_path):
    spec = load_sweep("smoke")
    # held in the queue for 10 minutes: pending jobs hold no run lock yet
    first = launch(
        spec,
        tmp_path,
        executor="slurm",
        progress=False,
        wait=False,
        timeout_min=TIMEOUT_MIN,
        slurm_args={"begin": "now+600"},
    )
    try:
        assert first.n_submitted == len(plan(spec))
        again = launch(
            spec, tmp_path, executor="slurm", progress=False, wait=False, timeout_min=TIMEOUT_MIN
        )
        assert again.n_submitted == 0 and again.counts == {"queued": len(plan(spec))}
        states = {s.state for s in sweep_status(spec, tmp_path)}
        assert states == {"queued"}
    finally:
        for job in first.jobs:
            job.cancel(check=False)


def test_data_parallel_job_trains_one_run_on_two_tasks(slurm_cluster, tmp_path, tiny_corpus):
    spec = long_spec(tiny_corpus, name="ddp", n_steps=240)
    spec = dataclasses.replace(spec, base=spec.base.replace(batch_size_tokens=512))  # 2 micro
    (run,) = plan(spec)
    assert run.config.grad_accum_steps == 2
    with pytest.raises(LaunchError, match="= 3 processes per run"):  # refused before submitting
        launch(spec, tmp_path / "bad", executor="slurm", tasks_per_node=3, progress=False)
    assert not (tmp_path / "bad").exists()

    ref = launch(spec, tmp_path / "ref", executor="debug", progress=False)
    assert ref.ok
    result = launch(
        spec,
        tmp_path / "slurm",
        executor="slurm",
        progress=False,
        timeout_min=TIMEOUT_MIN,
        tasks_per_node=2,
        cpus_per_task=1,
        poll_s=0.5,
    )
    assert result.ok, [(o.run_name, o.status, o.error) for o in result.outcomes]
    (outcome,) = result.outcomes
    assert rundir.read_summary(outcome.run_dir)["world_size"] == 2  # two ranks trained it
    got, want = curve(Path(outcome.run_dir)), curve(tmp_path / "ref" / "ddp" / run.run_name)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for row, ref_row in zip(got, want, strict=True):  # equal up to summation order
        for key, value in ref_row.items():
            if isinstance(value, float):
                assert math.isclose(row[key], value, rel_tol=1e-5), (row["step"], key)
            else:
                assert row[key] == value


def test_job_that_hits_its_time_limit_is_requeued_and_resumes_the_same_curve(
    slurm_cluster, tmp_path, tiny_corpus
):
    """A real Slurm time limit (2 minutes, the shortest that leaves room to requeue).

    Slurm checks limits every 30 s: a job with ``--time=2`` and ``--signal=USR2@40`` gets its
    signal at the first check 50-80 s after it starts (measured: 6, 36, 66, 96 s ticks), and is
    killed at the first check after 120 s. The run is sized (from a measured step time) to
    need ~130 s of training, so the first attempt cannot finish: submitit's handler requeues
    it, the next attempt resumes from ``checkpoint.pt``. Below ~50 minutes submitit counts every
    signal as a timeout, not a preemption, and requeues at most 3 timeouts; each attempt
    trains at least ~45 s, so the run fits within that budget.
    """
    probe_spec = long_spec(tiny_corpus, "probe", 1000)
    probe = launch(probe_spec, tmp_path / "probe", executor="debug", progress=False)
    s_per_step = probe.outcomes[0].run_wall_time_s / 1000
    # a run that ends before its first signal (the machine sped up since the probe) proves
    # nothing: then once more with twice the steps
    for attempt in range(2):
        n_steps = max(2000, round(130 * 2**attempt / s_per_step / 100) * 100)
        job, run_dir, ref_dir, restarts = _run_into_time_limit(tiny_corpus, tmp_path, n_steps)
        if restarts > 0:
            break
    log = Path(job.paths.stderr).read_text()
    outcome = job.result()
    assert outcome.status == "complete", log[-3000:]
    assert 1 <= restarts <= 3  # requeued on its limit, within submitit's budget of 3 timeouts
    # submitit's rule for short jobs: the signal counts as a timeout, never as a preemption
    assert "this job is timed-out" in log and "this job is preempted" not in log, log[-3000:]
    resumed = curve(run_dir)
    steps = [r["step"] for r in resumed]
    assert steps == sorted(set(steps)) and steps[-1] == n_steps  # no duplicated rows
    assert resumed == curve(ref_dir)
    print(f"time limit: {n_steps} steps ({s_per_step * 1e3:.1f} ms/step), {restarts} requeues")


def _run_into_time_limit(corpus, tmp_path, n_steps):
    # submit a run of n_steps with a 2-minute limit; train the reference meanwhile; wait
    spec = long_spec(corpus, name=f"limit{n_steps}", n_steps=n_steps)
    (run,) = plan(spec)
    result = launch(
        spec,
        tmp_path / "slurm",
        executor="slurm",
        progress=False,
        wait=False,
        timeout_min=2,
        signal_delay_s=40,
    )
    (job,) = result.jobs
    try:
        # the uninterrupted reference trains meanwhile, on the other core
        assert launch(spec, tmp_path / "ref", executor="debug", progress=False).ok
        deadline = time.monotonic() + 540
        while not job.done() and time.monotonic() < deadline:
            time.sleep(1)
        assert job.done(), "the job did not finish within 4 time limits"
    finally:
        job.cancel(check=False)
    info = subprocess.run(["scontrol", "show", "job", job.job_id], capture_output=True, text=True)
    restarts = int(info.stdout.split("Restarts=")[1].split()[0])
    run_dir = tmp_path / "slurm" / spec.name / run.run_name
    return job, run_dir, tmp_path / "ref" / spec.name / run.run_name, restarts


def _kill9_job(job_id: str) -> None:
    # SIGKILL every process of the job on the (local) node: the trainer dies as under kill -9
    out = subprocess.run(
        ["scontrol", "listpids", job_id], capture_output=True, text=True, check=True
    ).stdout
    pids = [int(ln.split()[0]) for ln in out.splitlines()[1:] if ln.split()[0].isdigit()]
    assert pids, out
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_branched_sweep_trunk_killed_then_relaunched(slurm_cluster, tmp_path, tiny_corpus):
    from test_wsd import wsd_spec

    spec = wsd_spec(tiny_corpus, name="wsd_slurm")
    runs = plan(spec)
    (trunk,) = [r for r in runs if r.role == "trunk"]
    ref = launch(spec, tmp_path / "ref", executor="debug", progress=False)
    assert ref.ok
    first = launch(
        spec, tmp_path / "slurm", executor="slurm", progress=False, wait=False,
        timeout_min=TIMEOUT_MIN,
    )  # fmt: skip
    jobs = dict(zip([r.run_name for r in runs], first.jobs, strict=True))
    trunk_array = jobs[trunk.run_name].job_id.split("_")[0]
    branch_arrays = {jobs[r.run_name].job_id.split("_")[0] for r in runs if r.role == "branch"}
    # branches: ONE second array, held by a dependency on the trunks' array
    assert len(branch_arrays) == 1 and trunk_array not in branch_arrays
    dep = subprocess.run(
        ["squeue", "-h", "-r", "-j", branch_arrays.pop(), "-o", "%E"],
        capture_output=True,
        text=True,
    ).stdout
    assert f"afterany:{trunk_array}" in dep, dep
    # kill -9 the trunk's trainer once it has passed its first branch point
    trunk_dir = tmp_path / "slurm" / "wsd_slurm" / trunk.run_name
    kept = rundir.step_checkpoint_path(trunk_dir, 48)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        rows = rundir.read_metrics(trunk_dir)
        if kept.exists() and rows and rows[-1]["step"] > 48:
            break
        assert not jobs[trunk.run_name].done(), "the trunk job ended before it could be killed"
        time.sleep(0.01)
    else:
        pytest.fail("the trunk job never got going")
    _kill9_job(jobs[trunk.run_name].job_id)
    deadline = time.monotonic() + 200
    while not all(j.done() for j in first.jobs) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all(j.done() for j in first.jobs), [(j.job_id, j.state) for j in first.jobs]
    # submitit calls a job done once its result file exists; Slurm still lists it RUNNING
    # until the job's process has exited, and a relaunch rightly leaves live jobs alone
    deadline = time.monotonic() + 60
    while live_slurm_jobs(tmp_path / "slurm" / "wsd_slurm") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not live_slurm_jobs(tmp_path / "slurm" / "wsd_slurm")
    assert rundir.run_state(trunk_dir) == "incomplete"
    assert rundir.last_step(trunk_dir) < 192
    # relaunch: the trunk resumes, branches that could not start are retried, none duplicated
    again = launch(
        spec, tmp_path / "slurm", executor="slurm", progress=False, timeout_min=TIMEOUT_MIN,
        poll_s=0.5,
    )  # fmt: skip
    assert again.ok, [(o.run_name, o.status, o.error) for o in again.outcomes]
    assert again.n_submitted >= 2  # the trunk and at least the branch at its last step
    for r in runs:
        got = curve(tmp_path / "slurm" / "wsd_slurm" / r.run_name)
        steps = [row["step"] for row in got]
        assert steps == sorted(set(steps)) and steps[-1] == r.config.n_steps
        assert got == curve(tmp_path / "ref" / "wsd_slurm" / r.run_name)
        assert rundir.run_state(tmp_path / "slurm" / "wsd_slurm" / r.run_name) == "complete"
    third = launch(spec, tmp_path / "slurm", executor="slurm", progress=False)
    assert third.n_submitted == 0 and third.job_ids == []  # idempotent: nothing reaches Slurm


def _release(array_id: str) -> None:
    # a pending array submitted with --begin in the future: start it now
    subprocess.check_call(["scontrol", "update", f"JobId={array_id}", "StartTime=now"])


def test_batches_are_one_array_task_each_with_member_locks_taken_in_the_job(
    slurm_cluster, tmp_path, tiny_corpus
):
    from test_sweeps_batches import lr_seed_spec

    spec = lr_seed_spec(tiny_corpus, name="batches_slurm", widths=(32,), group_size=2)
    runs = plan(spec)
    assert len(runs) == 4  # one shape x two seeds x two LRs: two batches of two
    sweep_dir = tmp_path / "slurm" / spec.name
    # submitted held back (--begin): a pending batch holds no lock yet
    first = launch(
        spec, tmp_path / "slurm", executor="slurm", progress=False, wait=False,
        timeout_min=TIMEOUT_MIN, slurm_args={"begin": "now+600"},
    )  # fmt: skip
    try:
        assert first.n_submitted == 4 and len(first.jobs) == 2  # one array task per batch
        assert len({j.split("_")[0] for j in first.job_ids}) == 1  # ONE array
        job_of = dict(zip([r.run_name for r in runs], first.job_ids, strict=True))
        statuses = sweep_status(spec, tmp_path / "slurm")
        assert {s.state for s in statuses} == {"queued"}
        labels = sorted(s.batch for s in statuses)
        assert labels == ["batch 1 (2 runs)"] * 2 + ["batch 2 (2 runs)"] * 2
        for s in statuses:  # a batch's members share their task, and its label
            mates = [t for t in statuses if t.batch == s.batch]
            assert {job_of[t.run_name] for t in mates} == {job_of[s.run_name]}
            assert s.detail == f"Slurm job {job_of[s.run_name]}"
        again = launch(
            spec, tmp_path / "slurm", executor="slurm", progress=False, wait=False,
            timeout_min=TIMEOUT_MIN,
        )  # fmt: skip
        assert again.n_submitted == 0 and again.counts == {"queued": 4}
        # another process trains one member when its batch starts: the job takes the other
        # member's lock, trains it, and leaves the held one alone
        held = runs[1].run_name
        with run_lock(sweep_dir / held) as got:
            assert got
            _release(first.job_ids[0].split("_")[0])
            # the runs trained alone, meanwhile (the reference curves)
            ref = launch(spec, tmp_path / "ref", executor="debug", progress=False, group_size=1)
            assert ref.ok
            deadline = time.monotonic() + 240
            while not all(j.done() for j in first.jobs) and time.monotonic() < deadline:
                time.sleep(0.25)
            assert all(j.done() for j in first.jobs), [j.state for j in first.jobs]
        results = {o.run_name: o for job in first.jobs for o in job.result()}
        assert sorted(results) == sorted(r.run_name for r in runs)
        assert [results[r.run_name].status for r in runs] == [
            "running" if r.run_name == held else "complete" for r in runs
        ]
    finally:
        for job in first.jobs:
            job.cancel(check=False)
    deadline = time.monotonic() + 60  # Slurm lists a job until its process has exited
    while live_slurm_jobs(sweep_dir) and time.monotonic() < deadline:
        time.sleep(0.25)
    states = {s.run_name: s.state for s in sweep_status(spec, tmp_path / "slurm")}
    assert states == {r.run_name: "pending" if r.run_name == held else "complete" for r in runs}
    # the relaunch trains the one left (alone: its partner is finished), then nothing
    second = launch(
        spec, tmp_path / "slurm", executor="slurm", progress=False, timeout_min=TIMEOUT_MIN,
        poll_s=0.25,
    )  # fmt: skip
    assert second.n_submitted == 1 and second.ok, [(o.status, o.error) for o in second.outcomes]
    for r in runs:  # every member's curve is the run trained alone's
        got, want = curve(sweep_dir / r.run_name), curve(tmp_path / "ref" / spec.name / r.run_name)
        assert [row["step"] for row in got] == [row["step"] for row in want]
        for row, ref_row in zip(got, want, strict=True):
            for key, value in ref_row.items():
                if isinstance(value, float):
                    assert math.isclose(row[key], value, rel_tol=1e-5), (r.run_name, key)
                else:
                    assert row[key] == value
    third = launch(spec, tmp_path / "slurm", executor="slurm", progress=False)
    assert third.n_submitted == 0 and third.job_ids == []  # idempotent: nothing reaches Slurm


def test_early_stop_stops_the_bad_run_of_a_slurm_array(slurm_cluster, tmp_path, tiny_corpus):
    # the monitor runs in the launcher's wait loop; the request reaches the job through the run
    # directory; the job ends "stopped" (issue 21; tests/test_early_stop.py for the local path)
    from test_early_stop import N_STEPS, _good_bad, lr_pair_spec

    from sweeps.early_stop import EarlyStopRule

    # longer runs and an earlier judgement than the local test: each poll of the wait loop asks
    # Slurm about every job (sacct), so the monitor gets a turn every second or two
    n_steps = 2 * N_STEPS  # margin: under load a 600-step run was first judged at step ~560
    spec = lr_pair_spec(tiny_corpus, name="es_slurm", n_steps=n_steps)
    good, bad = _good_bad(spec)
    result = launch(
        spec,
        tmp_path,
        executor="slurm",
        progress=False,
        timeout_min=TIMEOUT_MIN,
        poll_s=0.5,
        early_stop=EarlyStopRule(min_fraction=0.15, interval_s=0.5),
    )
    status = {o.run_name: o.status for o in result.outcomes}
    assert status == {good.run_name: "complete", bad.run_name: "stopped"}, result.outcomes
    summary = rundir.read_summary(tmp_path / spec.name / bad.run_name)
    assert summary["status"] == "stopped" and summary["step"] < n_steps
    states = {s.run_name: s.state for s in sweep_status(spec, tmp_path)}
    assert states[bad.run_name] == "stopped"
