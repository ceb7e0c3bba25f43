"""Run an experiment under mpirun with an HDF5 store at a given place: python mpi_entry.py SPEC DIR."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nasrun.errors import NasrunError  # noqa: E402
from nasrun.runtime.api import run_experiment  # noqa: E402
from nasrun.spec import load_spec  # noqa: E402
from nasrun.store import open_store  # noqa: E402

if __name__ == "__main__":
    spec_path, store_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        text = f.read()
    try:
        from mpi4py import MPI
        store = open_store(store_path) if MPI.COMM_WORLD.Get_rank() == 0 else None
        run_experiment(load_spec(spec_path), text, store, progress=False)
    except NasrunError as e:
        print(f"nasrun: error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
