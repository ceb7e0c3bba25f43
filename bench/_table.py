"""Shared bits of the benchmarks: tables, JSON output, verdicts, the MPI environment."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
from typing import Any, Optional, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nasrun.simulate import render_table  # noqa: E402


def table(title: str, headers: Sequence[str], cells: Sequence[Sequence[Any]]) -> str:
    return render_table(title, list(headers), [[str(c) for c in row] for row in cells])


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def write_json(path: Optional[str], obj: Any) -> None:
    if path:
        pathlib.Path(path).write_text(json.dumps(obj, indent=2, default=str))


def mpi_env(**extra: Any) -> dict:
    """The environment for mpirun children: this checkout importable, root allowed, 1 thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", PYTHONWARNINGS="ignore")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def mpirun_cmd(np_: int, args: Sequence[str]) -> list:
    if shutil.which("mpirun") is None:
        raise SystemExit("bench: mpirun not found (Open MPI is needed for this benchmark)")
    return ["mpirun", "--oversubscribe", "-np", str(np_), sys.executable] + list(args)
