"""``nasrun run SPEC`` and ``nasrun resume DIR``: run or continue an experiment inside an MPI job
(or alone, for a quick try)."""
from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

import click

from ..errors import CheckpointError, NasrunError, Resumable, RunFailed, StorageError
from .base import experiment_at, user_errors


def _comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def open_experiment_store(path: str, generations: int = 2):
    """The HDF5 store at ``path`` (a directory means ``<dir>/experiment.h5``); checkpoint
    fall-back warnings are printed on stderr."""
    from ..store import open_store
    store = open_store(path, generations=generations)
    store.on_warning = lambda msg: click.echo(f"nasrun: warning: {msg}", err=True)
    return store


class _Probed:
    """A store whose first load() returns what `resume` already read (read and warn once)."""

    def __init__(self, store, loaded):
        self.__dict__["_store"], self.__dict__["_loaded"] = store, loaded

    def load(self):
        loaded, self.__dict__["_loaded"] = self._loaded, None
        return loaded if loaded is not None else self._store.load()

    def __getattr__(self, name):
        return getattr(self._store, name)

    def __setattr__(self, name, value):
        setattr(self._store, name, value)


def _everywhere(comm, text: Optional[str], error: Optional[NasrunError]) -> str:
    """Rank 0's spec text on every rank, or its error raised (rank 0) / a quiet exit (others)."""
    if comm.Get_size() > 1:
        msg = comm.bcast((text, None if error is None else str(error)), root=0)
        if msg[1] is not None:
            if error is not None:
                raise error
            sys.exit(2)  # worker ranks: rank 0 prints the message
        return msg[0]
    if error is not None:
        raise error
    assert text is not None  # rank 0 has the text whenever there is no error
    return text


def _run_and_say_next(run_experiment, spec, text: str, store, directory: str, **kw) -> None:
    """run_experiment, then on rank 0 the experiment directory and the next commands: on stdout
    when the run ended, after the error's message when it failed or checkpointed on a signal.
    (run and resume import run_experiment early, while signals are caught: see catch_early.)"""
    from ..runtime.signals import ignore_late
    from .where import next_steps
    export = spec.objective.type == "train"  # a trained network that nasrun export can write
    try:
        run_experiment(spec, text, store, **kw)
    except (RunFailed, Resumable, StorageError) as e:
        if store is not None:  # rank 0, and the experiment exists
            e.epilogue = next_steps(directory, "resumable" if isinstance(e, Resumable) else "failed",
                                    export)
        raise
    finally:
        ignore_late()
    if store is not None:
        click.echo(next_steps(directory, "done", export))
    sys.stdout.flush()


@click.command("run")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--force", "force", multiple=True, metavar="KEY",
              help="Continue an existing checkpoint although the spec's KEY changed "
                   "(e.g. budget.max_trials); repeatable.")
@click.option("--groups", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Without mpirun: how many worker groups to run in this process (they take "
                   "turns; their trials overlap in simulated time).")
@click.option("-v", "--verbose", is_flag=True, help="Worker ranks report each trial on stderr.")
@user_errors
def run(spec_path: str, force: Tuple[str, ...], groups: int, verbose: bool) -> None:
    """Run the experiment SPEC as an MPI job: mpirun -np N nasrun run SPEC (or srun).

    Rank 0 runs the search strategy and the checkpoint; the other ranks train child models in
    groups of resources.ranks_per_trial. Started without mpirun (one rank), nasrun runs the
    worker groups in the same process so you can try a spec on a laptop. If the experiment
    directory holds a checkpoint, the run continues it (the spec must be unchanged, see --force).
    Exit codes: 0 done, 1 failed, 2 bad input, 75 checkpointed on SIGTERM/SIGUSR1 (resumable).
    """
    from ..runtime.signals import catch_early
    catch_early()  # a signal during the imports below must not kill the rank
    from ..runtime.api import run_experiment
    from ..spec import load_spec, parse_spec
    from ..spec.preflight import preflight
    comm = _comm()
    text, error = None, None
    if comm.Get_rank() == 0:  # rank 0 reads the spec: one error message, not one per rank
        try:
            preflight(load_spec(spec_path), spec_path, build_strategy=True)
            with open(spec_path, encoding="utf-8") as f:
                text = f.read()
        except NasrunError as e:
            error = e
    text = _everywhere(comm, text, error)
    spec = parse_spec(text, spec_path)
    store = None
    if comm.Get_rank() == 0:
        try:
            os.makedirs(spec.experiment.directory, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"{spec_path}: experiment.output_dir: cannot create "
                                  f"{spec.experiment.directory}: {e.strerror}") from None
        store = open_experiment_store(spec.experiment.directory, spec.checkpoint.generations)
    _run_and_say_next(run_experiment, spec, text, store, spec.experiment.directory, force=force,
                      verbose=verbose, groups=groups)


def _function_of(spec) -> Optional[str]:
    o = spec.objective
    return o.function if o.type == "function" else None


@click.command("resume")
@click.argument("path", metavar="DIR_OR_FILE", type=click.Path())
@click.option("--objective", "objective", metavar="MODULE:FUNCTION", default=None,
              help="Confirm the function objective the checkpoint names (resume imports and runs "
                   "it); required for function objectives.")
@click.option("--force", "force", multiple=True, metavar="KEY",
              help="--force objective.function: resume although --objective differs from the "
                   "checkpoint's (the checkpoint's spec is used otherwise).")
@click.option("--groups", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Without mpirun: worker groups in this process.")
@click.option("-v", "--verbose", is_flag=True, help="Worker ranks report each trial on stderr.")
@user_errors
def resume(path: str, objective: Optional[str], force: Tuple[str, ...], groups: int,
           verbose: bool) -> None:
    """Continue the experiment checkpointed at DIR_OR_FILE (an experiment directory or its
    experiment.h5) with the spec stored in it, on any number of ranks: finished trials are
    kept, in-flight trials continue from their last saved state, the strategy from its state.
    To change the spec (e.g. a larger budget), use `nasrun run SPEC --force budget.max_trials`.

    A checkpoint is code: its spec names the objective that resume runs. For a function
    objective, confirm it with --objective MODULE:FUNCTION.
    """
    from ..runtime.signals import catch_early
    catch_early()
    from ..runtime.api import run_experiment
    from ..spec import parse_spec
    from ..spec.preflight import preflight
    comm = _comm()
    store, text, error = None, None, None
    if comm.Get_rank() == 0:
        try:
            with experiment_at(path):  # nothing there: the error lists the experiments under runs/
                if not os.path.exists(path):
                    raise CheckpointError(f"{path}: no such file or directory")
                probe = open_experiment_store(path)
                loaded = probe.load()
                if loaded is None:
                    raise CheckpointError(f"{path}: no nasrun checkpoint here (start one with "
                                          "`nasrun run SPEC`)")
            text = loaded.spec_text
            spec = parse_spec(text, f"{path} (stored spec)")
            fn = _function_of(spec)
            if fn is not None and objective != fn:
                if objective is None:
                    raise CheckpointError(
                        f"{path}: the checkpoint's objective is the function {fn} (python_path "
                        f"{list(spec.objective.python_path)}); resuming imports and runs it. "
                        f"Confirm with: nasrun resume {path} --objective {fn}")
                if "objective.function" not in force:
                    raise CheckpointError(
                        f"{path}: --objective {objective} differs from the checkpoint's objective "
                        f"{fn}; the checkpoint's would run. Pass --objective {fn}, or run your "
                        "spec with `nasrun run SPEC --force objective.function`")
            # after the objective was confirmed: preflight imports it
            preflight(spec, f"{path} (stored spec)", output_dir=False, build_strategy=True)
            probe.generations = spec.checkpoint.generations
            store = _Probed(probe, loaded)
        except NasrunError as e:
            error = e
    text = _everywhere(comm, text, error)
    spec = parse_spec(text, f"{path} (stored spec)")
    _run_and_say_next(run_experiment, spec, text, store, path, force=force, verbose=verbose,
                      groups=groups)
