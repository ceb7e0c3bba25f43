"""Run an experiment under mpirun with the test JSON store: python mpi_entry.py SPEC STORE."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from json_store import JsonStore  # noqa: E402

from nasrun.errors import NasrunError  # noqa: E402
from nasrun.runtime.api import run_experiment  # noqa: E402
from nasrun.spec import load_spec  # noqa: E402

if __name__ == "__main__":
    spec_path, store_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        text = f.read()
    try:
        run_experiment(load_spec(spec_path), text, JsonStore(store_path), progress=False)
    except NasrunError as e:
        print(f"nasrun: error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
