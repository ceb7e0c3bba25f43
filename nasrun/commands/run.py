"""``nasrun run SPEC`` and ``nasrun resume DIR``: run or continue an experiment inside an MPI job
(or alone, for a quick try)."""
from __future__ import annotations

import os
import sys
import warnings
from typing import Optional, Tuple

import click

from .base import user_errors
from ..errors import CheckpointError, NasrunError


def _comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def open_experiment_store(path: str, generations: int = 2):
    """The HDF5 store at ``path`` (a directory means ``<dir>/experiment.h5``); checkpoint
    fall-back warnings are printed on stderr."""
    from ..store import open_store
    return _Loud(open_store(path, generations=generations))


class _Loud:
    """A store whose load() prints the store's warnings (a fall-back to an older generation)."""

    def __init__(self, store):
        self.store = store
        self._loaded = None  # kept by `resume`'s probe: read (and warn) once, not twice

    def save(self, snapshot):
        return self.store.save(snapshot)

    def load(self):
        from ..store import CheckpointWarning
        if self._loaded is not None:
            snapshot, self._loaded = self._loaded, None
            return snapshot
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CheckpointWarning)
            snapshot = self.store.load()
        for w in caught:
            click.echo(f"nasrun: warning: {w.message}", err=True)
        return snapshot


def _everywhere(comm, text: Optional[str], error: Optional[NasrunError]) -> str:
    """Rank 0's spec text on every rank, or its error raised (rank 0) / a quiet exit (others)."""
    if comm.Get_size() > 1:
        return _bcast_text(comm, text, error)
    if error is not None:
        raise error
    return text


def _bcast_text(comm, text: Optional[str], error: Optional[NasrunError]) -> str:
    """Rank 0's spec text (or its error) to every rank, so that all ranks stop together."""
    msg = comm.bcast((text, None if error is None else str(error)), root=0)
    if msg[1] is not None:
        if error is not None:
            raise error
        sys.exit(error.exit_code if error else 2)  # worker ranks: rank 0 prints the message
    return msg[0]


@click.command("run")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--force", "force", multiple=True, metavar="KEY",
              help="Continue an existing checkpoint although the spec's KEY changed "
                   "(e.g. budget.max_trials); repeatable.")
@click.option("-v", "--verbose", is_flag=True, help="Worker ranks report each trial on stderr.")
@user_errors
def run(spec_path: str, force: Tuple[str, ...], verbose: bool) -> None:
    """Run the experiment SPEC as an MPI job: mpirun -np N nasrun run SPEC (or srun).

    Rank 0 runs the search strategy and the checkpoint; the other ranks train child models in
    groups of resources.ranks_per_trial. Started without mpirun (one rank), nasrun runs a single
    worker in the same process so you can try a spec on a laptop. If the experiment directory
    holds a checkpoint, the run continues it (the spec must be unchanged, see --force).
    Exit codes: 0 done, 1 failed, 2 bad input, 75 checkpointed on SIGTERM/SIGUSR1 (resumable).
    """
    from ..runtime.signals import catch_early, ignore_late
    catch_early()  # a signal during the imports below must not kill the rank
    from ..runtime.api import run_experiment
    from ..spec import load_spec, parse_spec
    comm = _comm()
    text, error = None, None
    if comm.Get_rank() == 0:  # rank 0 reads the spec: one error message, not one per rank
        try:
            load_spec(spec_path)
            with open(spec_path, encoding="utf-8") as f:
                text = f.read()
        except NasrunError as e:
            error = e
    text = _everywhere(comm, text, error)
    spec = parse_spec(text, spec_path)
    store = None
    if comm.Get_rank() == 0:
        os.makedirs(spec.experiment.directory, exist_ok=True)
        store = open_experiment_store(spec.experiment.directory, spec.checkpoint.generations)
    try:
        run_experiment(spec, text, store, force=force, verbose=verbose)
    finally:
        ignore_late()
    sys.stdout.flush()


@click.command("resume")
@click.argument("path", metavar="DIR_OR_FILE", type=click.Path())
@click.option("--force", "force", multiple=True, metavar="KEY",
              help="Accepted for symmetry with `run`; the spec stored in the checkpoint is used.")
@click.option("-v", "--verbose", is_flag=True, help="Worker ranks report each trial on stderr.")
@user_errors
def resume(path: str, force: Tuple[str, ...], verbose: bool) -> None:
    """Continue the experiment checkpointed at DIR_OR_FILE (an experiment directory or its
    experiment.h5) with the spec stored in it, on any number of ranks: finished trials are
    kept, in-flight trials continue from their last saved epoch, the strategy from its state.
    To change the spec (e.g. a larger budget), use `nasrun run SPEC --force budget.max_trials`.
    """
    from ..runtime.signals import catch_early, ignore_late
    catch_early()
    from ..runtime.api import run_experiment
    from ..spec import parse_spec
    comm = _comm()
    store, text, error = None, None, None
    if comm.Get_rank() == 0:
        try:
            probe = open_experiment_store(path)
            snapshot = probe.load()
            if snapshot is None:
                raise CheckpointError(f"{path}: no nasrun checkpoint here (start one with `nasrun run SPEC`)")
            text = snapshot.spec_text
            spec = parse_spec(text, f"{path} (stored spec)")
            probe.store.generations = spec.checkpoint.generations
            probe._loaded = snapshot
            store = probe
        except NasrunError as e:
            error = e
    text = _everywhere(comm, text, error)
    spec = parse_spec(text, f"{path} (stored spec)")
    try:
        run_experiment(spec, text, store, force=force, verbose=verbose)
    finally:
        ignore_late()
    sys.stdout.flush()
