"""Where the experiments are and what to run next: the lines that end a run (the experiment
directory and the next commands), and the experiments under ``./runs/`` listed when a command
is given a path that holds none."""
from __future__ import annotations

import os
import shlex
import time
from typing import List, Optional, Tuple

#: where ``nasrun run`` puts an experiment whose spec names no output_dir (runs/NAME)
RUNS = "runs"
LISTED = 20  # experiments listed at most, the most recently saved first


def next_steps(directory: str, outcome: str, export: bool = True) -> str:
    """The experiment directory and the commands to run next. ``outcome``: ``done`` (the run
    ended), ``failed`` or ``resumable`` (checkpointed on a signal). ``export``: the objective
    trains networks that ``nasrun export`` can write out."""
    d = shlex.quote(directory)
    cmds: List[Tuple[str, str]] = []
    if outcome == "resumable":
        cmds.append((f"nasrun resume {d}", "continue the search"))
    cmds.append((f"nasrun status {d}", "progress, best trials, failures"))
    cmds.append((f"nasrun report {d}", "leaderboard, trials.csv/json, plots"))
    if export and outcome == "done":
        cmds.append((f"nasrun export {d} --best --out {shlex.quote(os.path.join(directory, 'export'))}",
                     "the best network as a PyTorch module"))
    width = max(len(c) for c, _ in cmds)
    return "\n".join([f"experiment: {directory}", "next:"]
                     + [f"  {c:<{width}}  # {why}" for c, why in cmds])


def holds_experiment(path: str) -> bool:
    """``path`` is a checkpoint file, or a directory with one (``experiment.h5[.N]``)."""
    from ..store.hdf5 import FILE_NAME
    if os.path.isfile(path):
        return True
    try:
        return os.path.isdir(path) and any(n == FILE_NAME or n.startswith(FILE_NAME + ".")
                                           for n in os.listdir(path))
    except OSError:
        return False


def list_experiments(root: str = RUNS) -> List[Tuple[str, str, Optional[int], Optional[float]]]:
    """(name, directory, trials, last save time) of each experiment directly under ``root``, the
    most recently saved first; trials and time are None for a checkpoint that cannot be read."""
    from ..errors import NasrunError
    from ..report import open_experiment
    try:
        dirs = sorted(os.path.join(root, n) for n in os.listdir(root))
    except OSError:
        return []
    rows: List[Tuple[str, str, Optional[int], Optional[float]]] = []
    for d in dirs:
        if not os.path.isdir(d) or not holds_experiment(d):
            continue
        try:
            exp = open_experiment(d)
            total = sum(exp.state.statuses.values())
            rows.append((exp.name or os.path.basename(d), d, total, exp.saved_at))
        except (NasrunError, OSError):
            rows.append((os.path.basename(d), d, None, None))
    rows.sort(key=lambda r: -(r[3] or 0.0))
    return rows


def experiments_note(root: str = RUNS) -> str:
    """The experiments under ``root`` as a table, or a line saying there are none."""
    rows = list_experiments(root)
    where = f"{root}/ (in {os.getcwd()})"
    if not rows:
        return f"no experiment under {where}; start one with: nasrun run SPEC"
    shown = rows[:LISTED]
    more = f" ({len(rows) - LISTED} more not shown)" if len(rows) > LISTED else ""
    table = [("name", "trials", "last save", "directory")] + [
        (name, "?" if n is None else str(n),
         "unreadable" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)), d)
        for name, d, n, t in shown]
    w = [max(len(r[i]) for r in table) for i in range(3)]
    lines = [f"  {a:<{w[0]}}  {b:>{w[1]}}  {c:<{w[2]}}  {d}" for a, b, c, d in table]
    return "\n".join([f"experiments under {where}{more}:"] + lines)
