"""``run_experiment``: the entry point every rank of the job calls (the CLI and tests use it)."""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, Iterable, Optional

from ..errors import CheckpointError, NasrunError, UserInputError
from ..store.base import Snapshot, Store
from .specdiff import spec_differences


def check_resume(snapshot: Snapshot, spec, force: Iterable[str] = ()) -> None:
    """Refuse to continue a checkpoint with a changed spec, unless every change is ``--force``d."""
    from ..spec import parse_spec
    from ..spec.fields import to_plain
    old = parse_spec(snapshot.spec_text, "<checkpoint>")
    refused, _ = spec_differences(to_plain(old), to_plain(spec), force)
    if refused:
        raise CheckpointError(
            "the spec differs from the checkpoint's:\n  " + "\n  ".join(refused)
            + "\nrestore the spec, or allow a change with --force KEY (e.g. --force budget.max_trials)")


def run_experiment(spec, spec_text: str, store: Optional[Store], comm: Any = None,
                   resume: bool = True, force: Iterable[str] = (), verbose: bool = False,
                   progress: Optional[bool] = None) -> Optional[Dict[str, Any]]:
    """Run (or continue) the experiment on every rank of ``comm`` (default ``MPI.COMM_WORLD``).

    Rank 0 loads the store's snapshot (when ``resume``), checks the spec against it and drives
    the search; with a single rank, rank 0 also trains (one in-process group). Returns rank 0's
    summary (``None`` on worker ranks). Raises RunFailed / Resumable on rank 0 as the run ends.
    """
    if comm is None:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    r = spec.resources
    if r.threads_per_rank:
        import torch
        torch.set_num_threads(r.threads_per_rank)
    snapshot, problem = None, None
    if rank == 0:
        try:
            snapshot = store.load() if (resume and store is not None) else None
            if snapshot is not None:
                check_resume(snapshot, spec, force)
        except UserInputError as e:
            problem = e
    if size > 1:
        msg = comm.bcast(None if problem is None else (type(problem).__name__, str(problem)), root=0)
        if msg is not None and rank != 0:  # rank 0 reports it; one message, not one per rank
            raise SystemExit(CheckpointError.exit_code)
    if problem is not None:
        raise problem
    if progress is None:
        # A live bar only where it can be seen: Open MPI hands every rank a pseudo-terminal even
        # when mpirun's output goes to a file, so under a launcher the per-trial lines (with
        # their [done/budget] counter) are the progress display. NASRUN_PROGRESS=1/0 overrides.
        forced = os.environ.get("NASRUN_PROGRESS")
        progress = forced == "1" if forced in ("0", "1") else (sys.stdout.isatty() and size == 1)
    if size == 1:
        return _run_single(spec, spec_text, store, snapshot, verbose, progress)
    return _run_mpi(spec, spec_text, store, snapshot, comm, verbose, progress)


def _runner(spec, backend, device, comm, world_rank, verbose):
    from ..objectives import make_objective
    from .worker import TrialRunner
    return TrialRunner(spec, make_objective(spec), backend, device, comm, world_rank, verbose)


def _run_single(spec, spec_text, store, snapshot, verbose, progress):
    from ..train.backends import LocalBackend
    from .driver import Driver
    from .roles import pick_device
    from .transport import InProcessTransport
    runner = _runner(spec, LocalBackend(), pick_device(spec.resources.device, 0), None, 0, verbose)
    runner.objective.prepare()
    return Driver(spec, spec_text, store, InProcessTransport(runner), snapshot,
                  progress=progress).run()


def _run_mpi(spec, spec_text, store, snapshot, comm, verbose, progress):
    from .roles import pick_device, split_roles
    r = spec.resources
    groups = (comm.Get_size() - 1) // r.ranks_per_trial
    if groups == 0:
        raise UserInputError(f"{comm.Get_size()} ranks cannot hold a group of resources.ranks_per_trial="
                             f"{r.ranks_per_trial} besides rank 0; start at least {r.ranks_per_trial + 1}")
    role = split_roles(comm, r.ranks_per_trial)
    if role.is_master:
        from .driver import Driver
        from .transport import MpiTransport
        spare = comm.Get_size() - 1 - groups * r.ranks_per_trial
        if spare:
            print(f"nasrun: warning: {spare} rank(s) left idle ({comm.Get_size() - 1} worker ranks are "
                  f"not a multiple of ranks_per_trial={r.ranks_per_trial})", file=sys.stderr)
        try:
            return Driver(spec, spec_text, store, MpiTransport(comm, role), snapshot, progress=progress).run()
        except NasrunError:
            raise  # the driver has stopped the groups (run failed, resumable, bad input)
        except BaseException:
            # a bug or an interrupt on rank 0: the workers would wait for it forever
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
            raise
    if role.group is None:
        return None
    if not verbose:
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
    from ..train.backends import make_backend
    from .worker import worker_loop
    device = pick_device(r.device, role.local_rank)
    if r.threads_per_rank is None and "OMP_NUM_THREADS" not in os.environ:
        import torch
        torch.set_num_threads(1)
    try:
        backend = make_backend(r.backend, role.group_comm, device)
    except ImportError as e:
        raise UserInputError(f"resources.backend is 'horovod' but Horovod cannot be imported: {e}") from None
    runner = _runner(spec, backend, device, role.group_comm, role.world_rank, verbose)
    try:
        worker_loop(comm, role, runner)
    finally:
        backend.shutdown()
    return None
