"""``run_experiment``: the entry point every rank of the job calls (the CLI and tests use it)."""
from __future__ import annotations

import os
import secrets
import socket
import sys
from typing import Any, Dict, Iterable, Optional

from ..errors import CheckpointError, NasrunError, UserInputError
from ..store.base import Loaded, Store
from ..store.lock import LockedError
from .specdiff import spec_differences

TOKEN_PREFIX = ".nasrun-token-"


def check_resume(loaded: Loaded, spec, force: Iterable[str] = ()) -> None:
    """Refuse to continue a checkpoint with a changed spec, unless every change is ``--force``d."""
    from ..spec import parse_spec
    from ..spec.fields import to_plain
    try:
        old = parse_spec(loaded.spec_text, "<checkpoint>")
    except NasrunError as e:
        raise CheckpointError(f"the checkpoint's stored spec is not valid: {e}") from None
    refused, _ = spec_differences(to_plain(old), to_plain(spec), force)
    if refused:
        raise CheckpointError(
            "the spec differs from the checkpoint's:\n  " + "\n  ".join(refused)
            + "\nrestore the spec, or allow a change with --force KEY (e.g. --force budget.max_trials)")


def _write_token(directory: str) -> Dict[str, str]:
    """A token file in the weights directory that every group leader must read back: proof that
    the experiment directory is on a file system the workers see."""
    os.makedirs(directory, exist_ok=True)
    for n in os.listdir(directory):
        if n.startswith(TOKEN_PREFIX):
            try:
                os.remove(os.path.join(directory, n))
            except OSError:
                pass
    token = secrets.token_hex(16)
    path = os.path.join(directory, TOKEN_PREFIX + token)
    with open(path, "w", encoding="utf-8") as f:
        f.write(token)
        f.flush()
        os.fsync(f.fileno())
    return {"path": path, "token": token, "dir": directory}


def _check_token(info: Optional[Dict[str, str]]) -> Optional[str]:
    if not info:
        return None
    try:
        with open(info["path"], encoding="utf-8") as f:
            if f.read().strip() == info["token"]:
                return None
            return "the file there holds another token (another run is using the directory?)"
    except OSError as e:
        return e.strerror or str(e)


def run_experiment(spec, spec_text: str, store: Optional[Store], comm: Any = None,
                   resume: bool = True, force: Iterable[str] = (), verbose: bool = False,
                   progress: Optional[bool] = None, groups: int = 1) -> Optional[Dict[str, Any]]:
    """Run (or continue) the experiment on every rank of ``comm`` (default ``MPI.COMM_WORLD``).

    Rank 0 loads the store (when ``resume``), checks the spec against it and drives the search;
    with a single rank, rank 0 also trains (``groups`` in-process groups). Returns rank 0's
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
    loaded, problem, token = None, None, None
    if rank == 0:
        try:
            if store is not None:  # refused here, a second writer ends every rank (not later,
                store.claim()      # in the driver, with the workers already waiting for work)
            loaded = store.load() if (resume and store is not None) else None
            if loaded is not None:
                check_resume(loaded, spec, force)
            if size > 1 and store is not None and store.states.location():
                token = _write_token(store.states.location())
        except NasrunError as e:
            problem = e
        except OSError as e:
            problem = UserInputError(f"cannot prepare the experiment directory: {e}")
    if size > 1:
        msg = comm.bcast((None if problem is None else str(problem), token), root=0)
        if msg[0] is not None and rank != 0:  # rank 0 reports it; one message, not one per rank
            raise SystemExit(CheckpointError.exit_code)
        token = msg[1]
    if problem is not None:
        if store is not None and not isinstance(problem, LockedError):
            store.close()  # the lock this run took
        raise problem
    if progress is None:
        # A live bar only where it can be seen: Open MPI hands every rank a pseudo-terminal even
        # when mpirun's output goes to a file, so under a launcher the per-trial lines (with
        # their [done/budget] counter) are the progress display. NASRUN_PROGRESS=1/0 overrides.
        forced = os.environ.get("NASRUN_PROGRESS")
        progress = forced == "1" if forced in ("0", "1") else (sys.stdout.isatty() and size == 1)
    if size == 1:
        return _run_single(spec, spec_text, store, loaded, verbose, progress, groups)
    return _run_mpi(spec, spec_text, store, loaded, comm, verbose, progress, token)


def _runner(spec, backend, device, states, comm, world_rank, verbose, wall_time_limit=True):
    from ..objectives import make_objective
    from .worker import TrialRunner
    return TrialRunner(spec, make_objective(spec), backend, device, states, comm, world_rank,
                       verbose, wall_time_limit)


def _run_single(spec, spec_text, store, loaded, verbose, progress, groups):
    from ..train.backends import LocalBackend
    from .driver import Driver
    from .local import LocalTransport
    from .roles import pick_device
    runner = _runner(spec, LocalBackend(), pick_device(spec.resources.device, 0), store.states,
                     None, 0, verbose)
    runner.objective.prepare()
    return Driver(spec, spec_text, store, LocalTransport(runner, groups), loaded,
                  progress=progress).run()


def _run_mpi(spec, spec_text, store, loaded, comm, verbose, progress, token):
    from .roles import pick_device, split_roles
    r = spec.resources
    groups = (comm.Get_size() - 1) // r.ranks_per_trial
    if groups == 0:
        raise UserInputError(f"{comm.Get_size()} ranks cannot hold a group of resources.ranks_per_trial="
                             f"{r.ranks_per_trial} besides rank 0; start at least {r.ranks_per_trial + 1}")
    role = split_roles(comm, r.ranks_per_trial)
    # every group leader proves it sees the experiment directory before any training
    seen = _check_token(token) if role.is_leader else None
    reports = comm.gather((socket.gethostname(), comm.Get_rank(), seen), root=0)
    bad = [x for x in reports if x[2] is not None] if role.is_master else []
    verdict = comm.bcast(bad, root=0)
    if verdict:
        if role.is_master:
            lines = [f"rank {rk} on host {host}: cannot read {token['path']}: {why}"
                     for host, rk, why in verdict]
            raise UserInputError(
                "worker groups do not see the experiment directory " + token["dir"]
                + " (it must be on a file system that every node shares):\n  " + "\n  ".join(lines))
        raise SystemExit(2)
    if role.is_master:
        from .driver import Driver
        from .transport import MpiTransport
        spare = comm.Get_size() - 1 - groups * r.ranks_per_trial
        if spare:
            print(f"nasrun: warning: {spare} rank(s) left idle ({comm.Get_size() - 1} worker ranks are "
                  f"not a multiple of ranks_per_trial={r.ranks_per_trial})", file=sys.stderr)
        try:
            return Driver(spec, spec_text, store, MpiTransport(comm, role), loaded,
                          progress=progress).run()
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
    from ..store.states import FileStates
    from ..train.backends import make_backend
    from .worker import fail_preparing, worker_loop
    backend = None
    try:  # a rank that cannot set up tells rank 0, which ends the job (exit 2): no hang
        device = pick_device(r.device, role.local_rank)
        if r.threads_per_rank is None and "OMP_NUM_THREADS" not in os.environ:
            import torch
            torch.set_num_threads(1)
        try:
            backend = make_backend(r.backend, role.group_comm, device)
        except ImportError as e:
            raise UserInputError(f"resources.backend is 'horovod' but Horovod cannot be imported: "
                                 f"{e}") from None
        states = FileStates(token["dir"]) if token else None
        runner = _runner(spec, backend, device, states, role.group_comm, role.world_rank, verbose)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's module may raise anything
        fail_preparing(comm, role.group, e, r.orphan_timeout)
    try:
        code = worker_loop(comm, role, runner, r.orphan_timeout)
    finally:
        backend.shutdown()
    if code:
        raise SystemExit(code)
    return None
