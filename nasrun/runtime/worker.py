"""The worker side: a group receives a trial, runs the objective on all its ranks, reports.

Only the group's first rank (the leader) talks to rank 0. It forwards each task to the other
ranks of the group over the group communicator, runs its share, and sends rank 0:

* ``checkpoint`` messages with the trial's :class:`~nasrun.store.ModelState` every
  ``checkpoint.every_epochs`` epochs, but not more often than every ``checkpoint.every_seconds``
  (rank 0 owns the single experiment file, so states travel to it rather than every group
  writing files of its own: one writer, one atomic generation, nothing to merge on resume);
* ``interrupted`` when rank 0 asked for the in-flight state (a signal), after the last state;
* ``result`` with the :class:`~nasrun.trial.Outcome` (a failure carries the error and the
  traceback from the failing rank) and, for multi-fidelity strategies, the final state.

Waiting is done by polling with short sleeps, not blocking receives: Open MPI's blocking
receives spin a core, and idle ranks must not slow the training ranks they share a node with.

Worker ranks ignore SIGTERM/SIGUSR1 (under mpirun/srun every rank may receive them; rank 0
coordinates the checkpoint) unless rank 0 stays silent for a minute afterwards.

Test hooks (environment): ``NASRUN_INJECT_FAILURE="trial=1,kind=raise,rank=1"`` (kinds raise,
nan, slow; several separated by ';') injects a failure into a training trial on one rank of its
group; ``NASRUN_DEBUG_DIGEST_DIR=DIR`` makes every rank write the digest of its final
parameters to ``DIR/trial<id>_rank<world rank>.txt``.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from typing import Any, Callable, Dict, Optional

from ..objectives import Objective, TrialContext
from ..store.base import ModelState
from ..train.trainer import Control, Interrupted, TrialFailed
from ..trial import Outcome, Suggestion
from .signals import take_early

TAG_TASK, TAG_CTRL, TAG_MSG, TAG_GROUP = 11, 12, 13, 14


SPIN_SECONDS = 1e-3  # a worker probes without sleeping this long first (see poll_recv)


def poll_recv(comm: Any, source: int, tag: int, give_up: Callable[[], bool] = lambda: False,
              spin: float = SPIN_SECONDS) -> Any:
    """Receive without spinning a core: probe, then sleep a little longer each time (max 20 ms).

    The first ``spin`` seconds probe back to back: rank 0 usually answers a finished trial within
    a few hundred microseconds, and a sleep (0.5 ms, several ms on a loaded node) would then
    dominate short trials. A worker spins at most this long per trial.
    """
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


def parse_injections(text: Optional[str]) -> Dict[int, Dict[str, Any]]:
    out: Dict[int, Dict[str, Any]] = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        d = dict(kv.split("=", 1) for kv in part.strip().split(","))
        out[int(d["trial"])] = {"kind": d.get("kind", "raise"), "rank": int(d.get("rank", 0))}
    return out


class TrialRunner:
    """Runs one task on this rank (every rank of the group, or the leader only)."""

    def __init__(self, spec, objective: Objective, backend, device, comm=None, world_rank: int = 0,
                 verbose: bool = False):
        self.spec, self.objective, self.backend, self.device = spec, objective, backend, device
        self.comm, self.world_rank, self.verbose = comm, world_rank, verbose
        self.inject = parse_injections(os.environ.get("NASRUN_INJECT_FAILURE"))

    def run(self, task: Dict[str, Any], control: Control) -> Optional[Dict[str, Any]]:
        """The message for rank 0 (leader), or None (other ranks, or nothing to report)."""
        s = Suggestion.from_dict(task["suggestion"])
        leader = self.backend.rank == 0
        if not leader and not self.objective.distributed:
            return None
        r = self.spec.resources
        control.inject = self.inject.get(s.trial_id, {})
        control.every_epochs = self.spec.checkpoint.every_epochs
        control.every_seconds = self.spec.checkpoint.every_seconds
        if r.trial_time_limit is not None:
            control.deadline = time.monotonic() + r.trial_time_limit
        ctx = TrialContext(s, self.backend, self.device, self.comm, task.get("state"), control,
                           bool(task.get("keep_state")), self.spec.experiment.seed,
                           self.spec.objective.options)
        t0 = time.time()
        try:
            res = self.objective.run(ctx)
            outcome, state = res.outcome, res.state
            self._write_digest(s.trial_id, res.digest)
        except Interrupted:
            return {"kind": "interrupted", "trial_id": s.trial_id} if leader else None
        except TrialFailed as e:
            outcome, state = Outcome.failure(s.trial_id, str(e)), None
        except Exception as e:  # noqa: BLE001 - any error in a child is a failed trial
            outcome = Outcome.failure(s.trial_id, "".join(
                traceback.format_exception(type(e), e, e.__traceback__)))
            state = None
        if self.verbose:
            print(f"[rank {self.world_rank}] trial {s.trial_id}: {outcome.status} in "
                  f"{time.time() - t0:.1f}s", file=sys.stderr, flush=True)
        if not leader:
            return None
        return {"kind": "result", "trial_id": s.trial_id, "outcome": outcome.to_dict(), "state": state}

    def _write_digest(self, trial_id: int, digest: Optional[str]) -> None:
        d = os.environ.get("NASRUN_DEBUG_DIGEST_DIR")
        if d and digest:
            with open(os.path.join(d, f"trial{trial_id}_rank{self.world_rank}.txt"), "w") as f:
                f.write(digest)


class _SignalWatch:
    """Worker ranks: note signals instead of dying; give up when rank 0 stays silent after one."""

    def __init__(self, patience: float = 60.0):
        self.seen: Optional[float] = None
        self.last_contact = time.monotonic()
        self.patience = patience
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                signal.signal(sig, self._note)
            except ValueError:  # not the main thread (tests)
                pass
        if take_early():
            self.seen = time.monotonic()

    def _note(self, signum, frame):
        self.seen = time.monotonic()

    def contact(self) -> None:
        self.last_contact = time.monotonic()

    def orphaned(self) -> bool:
        return (self.seen is not None and time.monotonic() - max(self.seen, self.last_contact)
                > self.patience)


def worker_loop(world: Any, role, runner: TrialRunner) -> int:
    """Serve tasks until rank 0 says stop; the return value is the process's exit code."""
    watch = _SignalWatch()
    gcomm = role.group_comm
    leader = role.is_leader
    members = range(1, gcomm.Get_size())
    runner.objective.prepare()
    if leader:
        world.send({"kind": "ready", "group": role.group}, dest=0, tag=TAG_MSG)
    while True:
        if leader:
            task = poll_recv(world, 0, TAG_TASK, watch.orphaned)
            if task is None:
                task = {"kind": "stop"}
            watch.contact()
            for m in members:
                gcomm.send(task, dest=m, tag=TAG_GROUP)
        else:
            task = poll_recv(gcomm, 0, TAG_GROUP, watch.orphaned)
            if task is None:
                return 75
        if task["kind"] == "stop":
            break
        while leader and world.Iprobe(source=0, tag=TAG_CTRL):  # stale requests of a finished trial
            world.recv(source=0, tag=TAG_CTRL)
        control = Control()
        if leader:
            tid = task["suggestion"]["trial_id"]

            def flush_requested() -> bool:
                if world.Iprobe(source=0, tag=TAG_CTRL):
                    world.recv(source=0, tag=TAG_CTRL)
                    return True
                return False

            def send_checkpoint(state: ModelState) -> None:
                world.send({"kind": "checkpoint", "group": role.group, "trial_id": tid, "state": state},
                           dest=0, tag=TAG_MSG)

            control.flush_requested = flush_requested
            control.send_checkpoint = send_checkpoint
        msg = runner.run(task, control)
        if leader and msg is not None:
            msg["group"] = role.group
            world.send(msg, dest=0, tag=TAG_MSG)
    return 0
