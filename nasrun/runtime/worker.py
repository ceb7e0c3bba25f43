"""The worker side: a group receives a trial, runs the objective on its ranks, reports.

Only the group's first rank (the leader) talks to rank 0. It forwards each message to the
other ranks of the group, runs its share, and sends rank 0 :class:`~.messages.Checkpointed`
(it wrote a model state itself: states never travel to rank 0), :class:`~.messages.Progress`
(when a stopper watches the run), :class:`~.messages.Interrupted` (after a Flush) and
:class:`~.messages.Result` (a failure carries the error and the failing rank's traceback).

With a stopper, the leader sends a Progress after each epoch and trains on: it never waits for
an answer. Rank 0 answers only a stop (:class:`~.messages.Decision`), which the leader reads
between steps, without blocking; the group's next step collective carries it to every rank, so
all ranks stop at the same step and the trial ends at its last finished epoch.

A trial's saved state is read by every rank of the group from the experiment's weights
directory; the candidates come newest first and a damaged one is skipped (said in the
result's ``note``), down to a fresh start when none can be read.

Waiting is polling with short sleeps, not blocking receives (Open MPI's blocking receives spin a
core). A worker waiting for work exits when it has heard nothing from rank 0 (no message, no
heartbeat) for ``resources.orphan_timeout`` seconds: rank 0 is gone. Worker ranks ignore
SIGTERM/SIGUSR1 (rank 0 coordinates the checkpoint).

Test hooks (environment): ``NASRUN_INJECT_FAILURE="trial=1,kind=raise,rank=1"`` (kinds raise,
nan, slow; several separated by ';') injects a failure into a training trial on one rank of its
group; ``NASRUN_DEBUG_DIGEST_DIR=DIR`` makes every rank write the digest of its final
parameters to ``DIR/trial<id>_rank<world rank>.txt``; ``NASRUN_TEST_PREPARE_DELAY="group=1,
seconds=20"`` delays a group's start (a slow node).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, NoReturn, Optional, Set, Tuple

from ..objectives import Objective, TrialContext
from ..store.base import ModelState, StateRef
from ..store.states import AsyncStateWriter, StateError, StateStore
from ..train.trainer import Control, Interrupted, TrialFailed
from ..trial import Outcome
from . import messages as m

TAG_TASK, TAG_CTRL, TAG_MSG, TAG_GROUP, TAG_DECISION = 11, 12, 13, 14, 15

SPIN_SECONDS = 1e-3  # a worker probes without sleeping this long first (see poll_recv)


class TimeLimit(Exception):
    """A function objective ran past ``resources.trial_time_limit``."""


def poll_recv(comm: Any, source: int, tag: int, give_up: Callable[[], bool] = lambda: False,
              spin: float = SPIN_SECONDS) -> Any:
    """Receive without spinning a core: probe, then sleep a little longer each time (max 20 ms);
    None when ``give_up()`` says so first."""
    spin_end = time.monotonic() + spin
    while time.monotonic() < spin_end:
        if comm.Iprobe(source=source, tag=tag):
            return comm.recv(source=source, tag=tag)
    delay = 0.0005
    while not comm.Iprobe(source=source, tag=tag):
        if give_up():
            return None
        time.sleep(delay)
        delay = min(delay * 1.5, 0.02)
    return comm.recv(source=source, tag=tag)


def send_to_rank0(world: Any, msg: Any, patience: float) -> None:
    """Send ``msg`` to rank 0 without blocking forever: a send that rank 0 has not taken after
    ``patience`` seconds means rank 0 is gone (stopped, hung): end the job."""
    req = world.isend(msg, dest=0, tag=TAG_MSG)
    end = time.monotonic() + patience
    delay = 0.0002
    while not req.Test():
        if time.monotonic() > end:
            print(f"nasrun: worker rank {world.Get_rank()}: rank 0 has not taken a message for "
                  f"{patience:g} s; it is gone: ending the job", file=sys.stderr, flush=True)
            world.Abort(75)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.02)


PREPARE_ERROR_CHARS = 300  # the error a failed worker sends rank 0, cut to this length


def prepare_error_text(error: BaseException) -> str:
    """A worker's setup error as one short line (a user error's message, else type: message)."""
    from ..errors import NasrunError
    from ..spec.fields import one_line
    text = str(error) if isinstance(error, NasrunError) else f"{type(error).__name__}: {error}"
    return one_line(text, PREPARE_ERROR_CHARS)


def fail_preparing(world: Any, group: Optional[int], error: BaseException, patience: float) -> NoReturn:
    """A worker rank could not set up (objective import, data set, device, backend): tell rank 0,
    which logs it, commits and ends the job with exit 2 (MPI_Abort); if rank 0 has not ended it
    after ``patience`` seconds, end it from here. Never returns."""
    import socket
    msg = m.PrepareFailed(-1 if group is None else group, world.Get_rank(), socket.gethostname(),
                          prepare_error_text(error))
    send_to_rank0(world, msg, patience)
    time.sleep(patience)  # rank 0 ends the job (and this rank) before this returns
    print(f"nasrun: error: worker rank {msg.rank} could not prepare: {msg.error}; rank 0 did not "
          "end the job: ending it", file=sys.stderr, flush=True)
    world.Abort(2)
    raise SystemExit(2)  # not reached: MPI_Abort ends the process


def parse_injections(text: Optional[str]) -> Dict[int, Dict[str, Any]]:
    out: Dict[int, Dict[str, Any]] = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        d = dict(kv.split("=", 1) for kv in part.strip().split(","))
        out[int(d["trial"])] = {"kind": d.get("kind", "raise"), "rank": int(d.get("rank", 0))}
    return out


def prepare_delay(group: Optional[int]) -> float:
    """The test hook NASRUN_TEST_PREPARE_DELAY for this group (seconds, 0 when not set)."""
    text = os.environ.get("NASRUN_TEST_PREPARE_DELAY")
    if not text or group is None:
        return 0.0
    d = dict(kv.split("=", 1) for kv in text.split(","))
    return float(d.get("seconds", 0)) if int(d.get("group", -1)) == group else 0.0


class Hooks:
    """How a running trial reaches rank 0 (set by the transport, used on the group's leader)."""

    flush_requested: Callable[[], bool] = staticmethod(lambda: False)
    checkpointed: Callable[[StateRef], None] = staticmethod(lambda ref: None)
    # (trial id, epoch, curve so far) -> True to stop now (in-process groups decide at once)
    progress: Callable[[int, int, Tuple[Dict[str, float], ...]], bool] = staticmethod(
        lambda tid, epoch, curve: False)
    # (trial id) -> whether a stop for this trial has come (polled, never waits)
    stop_requested: Callable[[int], bool] = staticmethod(lambda tid: False)


class TrialRunner:
    """Runs one trial on this rank (every rank of the group, or the leader only)."""

    def __init__(self, spec, objective: Objective, backend, device, states: StateStore,
                 comm=None, world_rank: int = 0, verbose: bool = False, wall_time_limit: bool = True):
        self.spec, self.objective, self.backend, self.device = spec, objective, backend, device
        self.states, self.comm, self.world_rank, self.verbose = states, comm, world_rank, verbose
        self.wall_time_limit = wall_time_limit
        self.inject = parse_injections(os.environ.get("NASRUN_INJECT_FAILURE"))
        self.stall = 0.0  # seconds training waited for background state writes

    def _load(self, task: m.RunTrial) -> tuple:
        """(state or None, note) from the task's candidates, best first."""
        notes: List[str] = []
        for ref in task.states:
            try:
                return self.states.read(ref), "; ".join(notes + [f"continued from epoch {ref.epoch}"]
                                                        if notes else notes)
            except StateError as e:
                notes.append(str(e))
        if notes:
            notes.append("no saved state could be used: the trial starts from scratch")
        return None, "; ".join(notes)

    def run(self, task: m.RunTrial, hooks: Hooks) -> Optional[Any]:
        """The message for rank 0 (leader): Result or Interrupted; None on other ranks."""
        s = task.suggestion
        leader = self.backend.rank == 0
        if not leader and not self.objective.distributed:
            return None
        r = self.spec.resources
        writers: List[AsyncStateWriter] = []  # started on the first state to write
        errors: List[str] = []

        def writer() -> AsyncStateWriter:
            if not writers:
                writers.append(AsyncStateWriter(self.states))
            return writers[0]

        written: Dict[int, StateRef] = {}  # epoch -> reference of the states written

        def drain(items) -> None:
            for _tid, res in items:
                if isinstance(res, StateRef):
                    written[res.epoch] = res
                    hooks.checkpointed(res)
                else:
                    errors.append(f"writing a model state failed: {res}")

        submitted: List[ModelState] = []

        def save_state(st: ModelState) -> None:
            submitted.append(st)
            del submitted[:-1]
            writer().submit(st)
            drain(writer().done())

        def poll() -> None:
            if writers:
                drain(writers[0].done())

        def flush_requested() -> bool:
            poll()
            return bool(hooks.flush_requested())

        control = Control()
        if leader:
            control.flush_requested = flush_requested
            control.poll = poll
            control.save_state = save_state
        control.inject = self.inject.get(s.trial_id, {})
        control.every_epochs = self.spec.checkpoint.every_epochs
        control.every_seconds = self.spec.checkpoint.every_seconds
        limit = r.trial_time_limit
        if limit is not None:
            control.deadline = time.monotonic() + limit
        state, note = self._load(task)
        if leader and task.report_epochs:
            control.report_epoch = self._reporter(s.trial_id, hooks, state)
            control.stop_requested = lambda: bool(hooks.stop_requested(s.trial_id))
        ctx = TrialContext(s, self.backend, self.device, self.comm, state, control,
                           bool(task.keep_state), self.spec.experiment.seed,
                           self.spec.objective.options)
        t0 = time.time()
        final: Optional[StateRef] = None
        try:
            with self._alarm(limit if (self.wall_time_limit and not self.objective.distributed) else None):
                res = self.objective.run(ctx)
            outcome = res.outcome
            self._write_digest(s.trial_id, res.digest)
            if leader and task.keep_state and res.state is not None:
                if submitted and submitted[-1] is res.state:  # its last checkpoint: written once
                    drain(writer().wait())
                    final = written.get(res.state.epoch)
                else:
                    writer().submit(res.state)
                    for _tid, got in writer().wait():
                        if isinstance(got, StateRef) and got.epoch == res.state.epoch:
                            written[got.epoch] = got
                            final = got
                        elif isinstance(got, StateRef):
                            hooks.checkpointed(got)
                        else:
                            errors.append(f"writing the final model state failed: {got}")
        except Interrupted:
            for w in writers:
                drain(w.wait())
                w.close()
            return m.Interrupted(-1, s.trial_id) if leader else None
        except TimeLimit:
            outcome = Outcome.failure(s.trial_id, f"time limit ({limit:g}s) exceeded")
        except TrialFailed as e:
            outcome = Outcome.failure(s.trial_id, str(e))
        except Exception as e:  # noqa: BLE001 - any error in a child is a failed trial
            outcome = Outcome.failure(s.trial_id, "".join(
                traceback.format_exception(type(e), e, e.__traceback__)))
        for w in writers:
            drain(w.wait())
            self.stall += w.stall
            w.close()
        if outcome.ok and limit is not None and self.wall_time_limit and time.time() - t0 > limit:
            outcome = Outcome.failure(s.trial_id, f"time limit ({limit:g}s) exceeded "
                                      f"(the trial took {time.time() - t0:.1f}s)")
        if self.verbose:
            print(f"[rank {self.world_rank}] trial {s.trial_id}: {outcome.status} in "
                  f"{time.time() - t0:.1f}s", file=sys.stderr, flush=True)
        if not leader:
            return None
        if errors and outcome.ok:
            note = "; ".join([note] + errors if note else errors)
        return m.Result(-1, outcome, final if outcome.ok else None, note)

    @staticmethod
    def _reporter(trial_id: int, hooks: Hooks,
                  state: Optional[ModelState]) -> Callable[[int, Dict[str, float]], bool]:
        """The trainer's per-epoch report: the curve so far (with the epochs of the state this
        trial continues from) to rank 0; True when the trial should stop now."""
        prior = state.meta.get("curve") if state is not None else None
        points = {int(p["epoch"]): dict(p) for p in prior or ()
                  if isinstance(p, dict) and isinstance(p.get("epoch"), (int, float))}

        def report(epoch: int, metrics: Dict[str, float]) -> bool:
            points[int(epoch)] = dict(metrics)
            curve = tuple(points[e] for e in sorted(points) if e <= epoch)
            stop = bool(hooks.progress(trial_id, int(epoch), curve))
            return stop or bool(hooks.stop_requested(trial_id))
        return report

    def _alarm(self, limit: Optional[float]):
        """Raise TimeLimit in this (main) thread after ``limit`` seconds."""
        import contextlib

        @contextlib.contextmanager
        def cm():
            if limit is None or threading.current_thread() is not threading.main_thread():
                yield
                return

            def fire(signum, frame):
                raise TimeLimit()

            old = signal.signal(signal.SIGALRM, fire)
            signal.setitimer(signal.ITIMER_REAL, float(limit))
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        return cm()

    def _write_digest(self, trial_id: int, digest: Optional[str]) -> None:
        d = os.environ.get("NASRUN_DEBUG_DIGEST_DIR")
        if d and digest:
            with open(os.path.join(d, f"trial{trial_id}_rank{self.world_rank}.txt"), "w") as f:
                f.write(digest)


class _Watch:
    """Worker ranks: signals are noted, not obeyed; rank 0 silent for ``patience`` s = gone."""

    def __init__(self, patience: float):
        self.last_contact = time.monotonic()
        self.patience = patience
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                signal.signal(sig, lambda signum, frame: None)
            except ValueError:  # not the main thread (tests)
                pass

    def contact(self) -> None:
        self.last_contact = time.monotonic()

    def orphaned(self) -> bool:
        return time.monotonic() - self.last_contact > self.patience


def worker_loop(world: Any, role, runner: TrialRunner, orphan_timeout: float = 600.0) -> int:
    """Serve trials until rank 0 says stop (the exit code, 0); when rank 0 is gone, end the job."""
    from .signals import take_early
    take_early()
    watch = _Watch(orphan_timeout)
    gcomm = role.group_comm
    leader = role.is_leader
    members = range(1, gcomm.Get_size())
    try:
        delay = prepare_delay(role.group)
        if delay:
            time.sleep(delay)
        runner.objective.prepare()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - whatever the user's code raises
        fail_preparing(world, role.group, e, orphan_timeout)
    watch.contact()
    if leader:
        send_to_rank0(world, m.Ready(role.group), orphan_timeout)
    while True:
        if leader:
            task = poll_recv(world, 0, TAG_TASK, watch.orphaned)
            if task is None:
                print(f"nasrun: worker group {role.group}: no word from rank 0 for "
                      f"{orphan_timeout:g} s; it is gone: ending the job", file=sys.stderr,
                      flush=True)
                # not a normal exit: MPI_Finalize would wait for rank 0 forever
                world.Abort(75)
            watch.contact()
            for k in members:
                gcomm.send(task, dest=k, tag=TAG_GROUP)
        else:
            task = poll_recv(gcomm, 0, TAG_GROUP, watch.orphaned)
            if task is None:
                print(f"nasrun: worker rank {role.world_rank}: no word from its group leader for "
                      f"{orphan_timeout:g} s: ending the job", file=sys.stderr, flush=True)
                world.Abort(75)
            watch.contact()
        if isinstance(task, m.Stop):
            return 0
        if isinstance(task, m.Heartbeat):
            continue
        for tag in (TAG_CTRL, TAG_DECISION):  # stale requests and stops of a finished trial
            while leader and world.Iprobe(source=0, tag=tag):
                world.recv(source=0, tag=tag)
        hooks = Hooks()
        if leader:
            def flush_requested() -> bool:
                got = False
                while world.Iprobe(source=0, tag=TAG_CTRL):
                    got = isinstance(world.recv(source=0, tag=TAG_CTRL), m.Flush) or got
                return got

            def checkpointed(ref: StateRef) -> None:
                send_to_rank0(world, m.Checkpointed(role.group, ref), orphan_timeout)

            def progress(tid: int, epoch: int, curve: Tuple[Dict[str, float], ...]) -> bool:
                send_to_rank0(world, m.Progress(role.group, tid, epoch, curve), orphan_timeout)
                return False  # rank 0 answers a stop only, read by stop_requested

            stop_for: Set[int] = set()

            def stop_requested(tid: int, stop_for: Set[int] = stop_for) -> bool:
                while world.Iprobe(source=0, tag=TAG_DECISION):
                    d = world.recv(source=0, tag=TAG_DECISION)
                    if d.stop:
                        stop_for.add(d.trial_id)
                return tid in stop_for

            hooks.flush_requested = flush_requested
            hooks.checkpointed = checkpointed
            hooks.progress = progress
            hooks.stop_requested = stop_requested
        msg = runner.run(task, hooks)
        watch.contact()
        if leader and msg is not None:
            send_to_rank0(world, dataclasses.replace(msg, group=role.group), orphan_timeout)
