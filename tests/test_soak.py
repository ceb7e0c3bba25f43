"""Soak: short `nasrun` jobs back to back under mpirun (3 to 5 ranks) on a machine kept busy by
another process, mixing a fresh run, a resume of a finished experiment, a target reached at once,
kill -9 of the whole job then resume, SIGUSR1 then resume (README "Checkpoints, resume and
signals"). Every job must exit with its documented code within its bound, leave no process
behind, and lose no finished trial.

``NASRUN_SOAK_RUNS`` jobs (default 7: one of each, about 2 minutes), ``NASRUN_SOAK_SEED`` the
schedule's seed. The full soak: ``NASRUN_SOAK_RUNS=50 python -m pytest -q tests/test_soak.py -s``.
"""
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional

import pytest
from mpi_jobs import TESTS, Job, session_pids
from store_view import load_strict, load_view, results

from nasrun.store import CheckpointWarning

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

RUNS = int(os.environ.get("NASRUN_SOAK_RUNS", "7"))
SEED = int(os.environ.get("NASRUN_SOAK_SEED", "17"))
TRIALS = 24  # max_trials of every experiment
EXIT_BOUND = 30.0  # s from the driver's "finished" line, the signal or the kill to the job's end
JOB_TIMEOUT = 300.0  # s for one whole job: past it the job hangs
DONE_RESUME_BOUND = 90.0  # s for a whole resume of a finished experiment (start-up included)
OBJECTIVE = "objectives_for_tests:stateful"
STRATEGIES = {"random": "{name: random}",
              "evolution": "{name: evolution, options: {population_size: 6, sample_size: 3}}",
              "asha": "{name: asha, options: {eta: 3}}"}
KINDS = ("fresh", "resume-done", "target", "kill9", "sigusr1")  # the cycle
JOBS_OF = {"kill9": 2, "sigusr1": 2}  # the run, then the resume that finishes it


def spec_text(out_dir: str, strategy: str, seed: int, target: Optional[float] = None) -> str:
    """A chain space and the ``stateful`` objective: 2 epochs of 0.4 s (ASHA: 1 to 3), a state
    saved after each; commits every 0.5 s."""
    return f"""experiment: {{name: soak, seed: {seed}, output_dir: {out_dir}}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 3}}}}
strategy: {STRATEGIES[strategy]}
objective: {{type: function, function: "{OBJECTIVE}", python_path: ["{TESTS}"],
             fidelity: {{min: 1, max: 3, integer: true}}, options: {{epoch_seconds: 0.4, epochs: 2}}}}
budget: {{max_trials: {TRIALS}{'' if target is None else f', target: {target}'}}}
checkpoint: {{every_seconds: 0.5, every_epochs: 1}}
resources: {{max_attempts: 10}}
"""


@dataclass
class Step:
    kind: str
    strategy: str
    ranks: int
    resume_ranks: int  # kill9 / sigusr1: the resume's ranks; resume-done: which finished experiment


def schedule(runs: int, seed: int) -> List[Step]:
    """KINDS and strategies in turn, ranks drawn from ``seed``, until ``runs`` jobs."""
    rng = random.Random(seed)
    names = sorted(STRATEGIES)
    first = rng.randrange(len(names))
    steps: List[Step] = []
    jobs = 0
    while jobs < runs:  # 5 kinds, 3 strategies: each kind meets each strategy every 15 steps
        n = len(steps)
        steps.append(Step(KINDS[n % len(KINDS)], names[(first + n) % len(names)],
                          rng.randint(3, 5), rng.randint(3, 5)))
        jobs += JOBS_OF.get(steps[-1].kind, 1)
    return steps


@dataclass
class Record:
    kind: str
    strategy: str
    ranks: int
    rc: int
    to_exit: float  # s from the finished line / signal / kill to the end of the job
    wall: float


class Soak:
    """Runs the jobs, checks each one's end and keeps the records for the summary."""

    def __init__(self, root):
        self.root = root
        self.records: List[Record] = []
        self.finished: List[tuple] = []  # (directory, strategy) of finished experiments

    def start(self, ranks: int, args: List[str]) -> Job:
        return Job(ranks, args, str(self.root))

    def end(self, job: Job, what: str, strategy: str, ranks: int, rc_want: int,
            since: Optional[float] = None) -> None:
        """Wait for the job (JOB_TIMEOUT from its start), then check: exit code, the time from
        ``since`` (default: the driver's finished line) to its end, no process left behind."""
        try:
            job.proc.wait(timeout=max(1.0, job.t0 + JOB_TIMEOUT - time.monotonic()))
        except subprocess.TimeoutExpired:
            job.kill()
            raise AssertionError(f"{what} ({strategy}, {ranks} ranks) still running after "
                                 f"{JOB_TIMEOUT:g} s (killed):\n{job.output[-5000:]}") from None
        ended = time.monotonic()
        left = wait_gone(job.proc.pid, 5.0)
        if left:
            job.kill()
        job._reader.join(5)
        if since is None:
            since = job.line_time("finished (")
            assert since is not None, f"{what}: no 'finished' line:\n{job.output[-5000:]}"
        rec = self.record(job, Record(what, strategy, ranks, job.proc.returncode, ended - since,
                                      ended - job.t0))
        assert not left, f"{what}: processes {left} of the job outlived mpirun:\n{job.output[-5000:]}"
        assert rec.rc == rc_want, f"{what}: exit code {rec.rc}, not {rc_want}:\n{job.output[-5000:]}"
        assert rec.to_exit <= EXIT_BOUND, f"{what}: {rec.to_exit:.1f} s to exit:\n{job.output[-5000:]}"
        assert "Traceback" not in job.output, f"{what}:\n{job.output[-5000:]}"

    def record(self, job: Job, rec: Record) -> Record:
        """Keep ``rec``, the job's output in ``jobNN-KIND.log``; one progress line."""
        self.records.append(rec)
        n = len(self.records)
        (self.root / f"job{n:02d}-{rec.kind}.log").write_text(job.output)
        print(f"soak job {n}: {rec.kind}, {rec.strategy}, {rec.ranks} ranks: exit {rec.rc}, "
              f"{rec.to_exit:.1f} s to exit, {rec.wall:.1f} s", flush=True)
        return rec

    def kill(self, job: Job, strategy: str, ranks: int) -> None:
        """kill -9 of the whole job (mpirun and every rank: the session)."""
        t = time.monotonic()
        job.kill()  # asserts that nothing survived
        ended = time.monotonic()
        self.record(job, Record("kill9-run", strategy, ranks, job.proc.returncode, ended - t,
                                ended - job.t0))
        assert job.proc.returncode == -signal.SIGKILL, job.output[-5000:]
        assert ended - t <= EXIT_BOUND

    def resume_args(self, d: str) -> List[str]:
        return ["resume", d, "--objective", OBJECTIVE]

    # -- the kinds ---------------------------------------------------------------------------
    def fresh(self, i: int, step: Step) -> None:
        d = self.write_spec(i, step)
        job = self.start(step.ranks, ["run", d + ".yaml"])
        self.end(job, "fresh", step.strategy, step.ranks, 0)
        check_complete(load_strict(d), job)
        self.finished.append((d, step.strategy))

    def resume_done(self, i: int, step: Step) -> None:
        if not self.finished:  # the cycle starts with a fresh run; a short custom schedule may not
            self.fresh(i, step)
            return
        d, strategy = self.finished[step.resume_ranks % len(self.finished)]
        before = load_strict(d)
        job = self.start(step.ranks, self.resume_args(d))
        self.end(job, "resume-done", strategy, step.ranks, 0)
        assert self.records[-1].wall <= DONE_RESUME_BOUND, job.output[-5000:]
        after = load_strict(d)
        assert job.finished_lines() == 0, f"a finished experiment ran trials:\n{job.output}"
        assert results(after) == results(before) and len(after.trials) == len(before.trials)

    def target(self, i: int, step: Step) -> None:
        d = self.write_spec(i, step, target=0.0)  # the first finished trial reaches it
        job = self.start(step.ranks, ["run", d + ".yaml"])
        self.end(job, "target", step.strategy, step.ranks, 0)
        assert "finished (target valid_accuracy 0 reached" in job.output, job.output[-5000:]
        snap = load_strict(d)
        done = results(snap)
        # the trials in flight when the first one finished: at most one per group
        assert 1 <= len(done) <= step.ranks - 1 and not snap.loaded.state.live, job.output
        self.finished.append((d, step.strategy))

    def kill9(self, i: int, step: Step) -> None:
        self.interrupt(i, step, lambda job: self.kill(job, step.strategy, step.ranks))

    def sigusr1(self, i: int, step: Step) -> None:
        def usr1(job):
            t = time.monotonic()
            job.proc.send_signal(signal.SIGUSR1)  # mpirun forwards it to every rank
            self.end(job, "sigusr1-run", step.strategy, step.ranks, 75, since=t)
            assert "exited on signal" not in job.output, job.output[-5000:]
        self.interrupt(i, step, usr1)

    def interrupt(self, i: int, step: Step, stop) -> None:
        """A run stopped by ``stop`` after two finished trials, then a resume that finishes."""
        d = self.write_spec(i, step)
        job = self.start(step.ranks, ["run", d + ".yaml"])
        before = wait_finished(job, d, 2)
        stop(job)
        stopped = results(load_strict(d))
        lost = {t: r for t, r in before.items() if stopped.get(t) != r}
        assert not lost, f"finished trials lost or changed by {step.kind}: {lost}"
        job = self.start(step.resume_ranks, self.resume_args(d))
        self.end(job, f"{step.kind}-resume", step.strategy, step.resume_ranks, 0)
        final = load_strict(d)
        check_complete(final, job)
        got = results(final)
        lost = {t: r for t, r in stopped.items() if got.get(t) != r}
        assert not lost, f"finished trials lost or changed by the resume after {step.kind}: {lost}"
        self.finished.append((d, step.strategy))

    def write_spec(self, i: int, step: Step, target: Optional[float] = None) -> str:
        d = str(self.root / f"e{i:02d}-{step.kind}-{step.strategy}")
        with open(d + ".yaml", "w") as f:
            f.write(spec_text(d, step.strategy, seed=i, target=target))
        return d

    def summary(self, total: float) -> str:
        rows = [f"soak summary: {len(self.records)} jobs in {total:.0f} s (seed {SEED})",
                f"  {'job':<16}{'n':>4}  {'exit codes':<14}{'max to-exit s':>14}{'max wall s':>12}"]
        for kind in dict.fromkeys(r.kind for r in self.records):
            rs = [r for r in self.records if r.kind == kind]
            codes = ",".join(f"{c}x{n}" for c, n in sorted(Counter(r.rc for r in rs).items()))
            rows.append(f"  {kind:<16}{len(rs):>4}  {codes:<14}{max(r.to_exit for r in rs):>14.1f}"
                        f"{max(r.wall for r in rs):>12.1f}")
        for name, key in (("exit codes", "rc"), ("ranks", "ranks"), ("strategies", "strategy")):
            counts = Counter(getattr(r, key) for r in self.records)
            rows.append(f"  {name}: " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
        if self.records:
            worst = max(self.records, key=lambda r: r.to_exit)
            rows.append(f"  longest time to exit: {worst.to_exit:.1f} s ({worst.kind}, "
                        f"{worst.strategy}, {worst.ranks} ranks)")
        return "\n".join(rows)


def wait_gone(sid: int, timeout: float) -> List[int]:
    """The processes of session ``sid`` still alive after ``timeout`` s."""
    end = time.monotonic() + timeout
    while session_pids(sid) and time.monotonic() < end:
        time.sleep(0.1)
    return session_pids(sid)


def wait_finished(job: Job, d: str, n: int) -> Dict[int, tuple]:
    """The finished trials once the checkpoint (read as `nasrun status` does, while the job
    writes it) holds ``n``; fails if the job ends first or after JOB_TIMEOUT."""
    while time.monotonic() < job.t0 + JOB_TIMEOUT:
        assert job.proc.poll() is None, f"the job ended before {n} trials finished:\n{job.output}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CheckpointWarning)  # a journal line being written
                snap = load_view(d)
        except Exception:  # noqa: BLE001 - not written yet, or a file rotated away mid-read
            snap = None
        done = results(snap) if snap is not None else {}
        if len(done) >= n:
            return done
        time.sleep(0.1)
    job.kill()
    raise AssertionError(f"{n} finished trials not seen in {JOB_TIMEOUT:g} s:\n{job.output}")


def check_complete(snap, job: Job) -> None:
    """Exactly max_trials finished trials, all done, unique ids, none left in flight."""
    assert snap is not None, job.output[-5000:]
    done = results(snap)  # asserts unique ids
    assert len(done) == TRIALS and len(snap.trials) == TRIALS, (sorted(done), job.output[-5000:])
    assert not snap.loaded.state.live, job.output[-5000:]


@pytest.fixture
def busy_machine():
    """One busy-looping process for the soak's duration (it must still be running at the end)."""
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        yield load
    finally:
        alive = load.poll() is None
        load.kill()
        load.wait()
    assert alive, "the background load died during the soak"


def test_soak_back_to_back_jobs_exit_as_documented_and_lose_nothing(tmp_path, busy_machine):
    steps = schedule(RUNS, SEED)
    soak = Soak(tmp_path)
    t0 = time.monotonic()
    try:
        for i, step in enumerate(steps):
            getattr(soak, step.kind.replace("-", "_"))(i, step)
    finally:
        print("\n" + soak.summary(time.monotonic() - t0))
    assert len(soak.records) >= RUNS
