"""A stand-in for `nasrun run|resume` in SLURM tests: an MPI program driven by a plan.

Invoked by the batch script as ``PYTHON -m nasrun run SPEC`` / ``PYTHON -m nasrun resume DIR``
where PYTHON is a wrapper that runs this file. ``NASRUN_TEST_STATE`` is a directory holding
``plan`` (one entry per job, comma-separated: an exit code, or ``wait`` = wait for SIGUSR1 on
every rank, then exit 75) and a counter. Rank 0 logs each call to ``calls.jsonl`` and creates
``<experiment dir>/experiment.h5`` (a placeholder) so the next job resumes.
"""
import json
import os
import signal
import sys
import time
from typing import List, Optional

from mpi4py import MPI

comm = MPI.COMM_WORLD
state = os.environ["NASRUN_TEST_STATE"]
args = sys.argv[1:]
assert args[:2] == ["-m", "nasrun"] and args[2] in ("run", "resume"), args
job = os.environ.get("SLURM_JOB_ID", "?")

got: List[float] = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(time.time()))

count_file = os.path.join(state, "count")
n: Optional[int]
if comm.rank == 0:
    n = int(open(count_file).read()) if os.path.exists(count_file) else 0
    with open(count_file, "w") as f:
        f.write(str(n + 1))
else:
    n = None
n = comm.bcast(n, root=0)
plan = open(os.path.join(state, "plan")).read().strip().split(",")
step = plan[min(n, len(plan) - 1)]
total = comm.allreduce(comm.rank + 1)

if comm.rank == 0:
    exp_dir = (args[3] if args[2] == "resume"
               else os.path.join(os.getcwd(), "runs", os.environ["NASRUN_TEST_NAME"]))
    os.makedirs(exp_dir, exist_ok=True)
    open(os.path.join(exp_dir, "experiment.h5"), "a").close()
    with open(os.path.join(state, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"job": job, "call": n, "cmd": args[2], "arg": args[3], "size": comm.size,
                            "sum": total, "step": step}) + "\n")

code = 0
if step == "wait":
    open(os.path.join(state, f"ready-{job}-{comm.rank}"), "w").close()
    deadline = time.time() + 90
    while not got and time.time() < deadline:
        time.sleep(0.1)
    if got:
        open(os.path.join(state, f"signalled-{job}-{comm.rank}"), "w").close()
    code = 75 if got else 1
else:
    code = int(step)
rank = comm.rank
comm.Barrier()
MPI.Finalize()
sys.exit(code if rank == 0 else 0)
