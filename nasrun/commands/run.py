"""``nasrun run SPEC``: run an experiment inside an MPI job (or alone, for a quick try)."""
from __future__ import annotations

import os
import sys
from typing import Tuple

import click

from ..cli import user_errors


def _rank() -> int:
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank()


def open_experiment_store(spec):
    """The experiment's store (``<experiment dir>/experiment.h5``)."""
    path = os.path.join(spec.experiment.directory, "experiment.h5")
    try:
        from ..store import open_store  # provided by the HDF5 store
    except ImportError:
        from ..store import MemoryStore
        if _rank() == 0:
            click.echo("nasrun: warning: checkpointing unavailable in this build (results are not saved)",
                       err=True)
        return MemoryStore()
    return open_store(path)


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
    """
    from ..runtime.api import run_experiment
    from ..spec import load_spec
    spec = load_spec(spec_path)
    with open(spec_path, encoding="utf-8") as f:
        text = f.read()
    if _rank() == 0:
        os.makedirs(spec.experiment.directory, exist_ok=True)
    store = open_experiment_store(spec) if _rank() == 0 else None
    run_experiment(spec, text, store, force=force, verbose=verbose)
    sys.stdout.flush()
