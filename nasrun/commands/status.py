"""``nasrun status DIR_OR_FILE``: an experiment's progress, read from its checkpoint.

Read-only and lock-free: it opens the newest good generation (the writer only ever renames a
finished file over it), so it is safe to run while the experiment runs and never slows it down.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from typing import Any, Dict, List, Optional

import click

from ..cli import user_errors
from ..errors import CheckpointError


def experiment_status(path: str, top: int = 5) -> Dict[str, Any]:
    """The status report of the experiment at ``path`` (a run directory or a checkpoint file)."""
    import h5py
    import yaml

    from ..store import CheckpointWarning, open_store
    from ..store.base import DONE, FAILED, QUEUED, RUNNING
    from ..store.hdf5 import _objective

    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file or directory")
    store = open_store(path)
    with warnings.catch_warnings():  # the report carries them (store.warnings)
        warnings.simplefilter("ignore", CheckpointWarning)
        snap = store.load(models=False)
    if snap is None:
        raise CheckpointError(f"{path}: no nasrun checkpoint here (expected {store.path})")
    with h5py.File(store.loaded_from, "r", locking=False) as f:
        saved_at = float(f.attrs["saved_at"])
    try:
        spec = yaml.safe_load(snap.spec_text) or {}
    except yaml.YAMLError:
        spec = {}
    spec = spec if isinstance(spec, dict) else {}
    metric, mode = _objective(snap.spec_text)
    budget = spec.get("budget") if isinstance(spec.get("budget"), dict) else {}
    counts = {s: sum(t.status == s for t in snap.trials) for s in (DONE, RUNNING, QUEUED, FAILED)}

    scored = [(t, t.outcome.value(metric)) for t in snap.trials if t.outcome is not None]
    scored = [(t, v) for t, v in scored if v is not None]
    scored.sort(key=lambda tv: tv[1], reverse=(mode == "max"))
    best = [{"trial_id": t.trial_id, metric: v, "config": dict(t.suggestion.config),
             "budget": t.suggestion.budget} for t, v in scored[:top]]
    failed = [t for t in snap.trials if t.status == FAILED]
    failed.sort(key=lambda t: (t.end or 0, t.trial_id), reverse=True)
    failures = [{"trial_id": t.trial_id,
                 "error": ((t.outcome.error if t.outcome else None) or "").strip().split("\n")[0]}
                for t in failed[:top]]
    rt = snap.runtime_state if isinstance(snap.runtime_state, dict) else {}
    elapsed = rt.get("elapsed_seconds", rt.get("elapsed"))
    if not isinstance(elapsed, (int, float)):
        starts = [t.start for t in snap.trials if t.start is not None]
        ends = [t.end for t in snap.trials if t.end is not None]
        elapsed = (max(ends) - min(starts)) if starts and ends else None
    experiment = spec.get("experiment") if isinstance(spec.get("experiment"), dict) else {}
    return {"experiment": experiment.get("name"), "file": store.loaded_from,
            "generation": store.generation, "saved_at": saved_at, "metric": metric, "mode": mode,
            "max_trials": budget.get("max_trials", 20), "trials": {"total": len(snap.trials), **counts},
            "best": best, "failures": failures, "jobs": list(rt.get("jobs") or []),
            "elapsed_seconds": float(elapsed) if elapsed is not None else None,
            "warnings": list(store.warnings)}


def _plain(x: Any) -> Any:
    import numpy as np
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _duration(s: Optional[float]) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _cell(key: str, v: Any) -> str:
    if isinstance(v, (int, float)) and v > 1e9 and any(w in key for w in ("start", "end", "time")):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    return str(v)


def print_status(r: Dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    for w in r["warnings"]:
        con.print(f"[yellow]warning:[/] {w}", markup=True, highlight=False)
    t = r["trials"]
    finished = t["done"] + t["failed"]
    of = f" of {r['max_trials']}" if r["max_trials"] else ""
    con.print(f"[bold]{r['experiment'] or '(unnamed)'}[/]  {r['file']} (generation {r['generation']}, "
              f"saved {_duration(time.time() - r['saved_at'])} ago)", highlight=False)
    con.print(f"trials: {finished}{of} finished ({t['done']} done, {t['failed']} failed), "
              f"{t['running']} running, {t['queued']} queued; elapsed {_duration(r['elapsed_seconds'])}",
              highlight=False)
    if r["best"]:
        tb = Table(title=f"best trials ({r['metric']}, {r['mode']})", title_justify="left")
        for c in ("trial", r["metric"], "budget", "config"):
            tb.add_column(c)
        for b in r["best"]:
            tb.add_row(str(b["trial_id"]), f"{b[r['metric']]:.6g}", str(b["budget"] or "-"),
                       json.dumps(b["config"], default=_plain))
        con.print(tb)
    if r["failures"]:
        tf = Table(title="recent failures", title_justify="left")
        tf.add_column("trial")
        tf.add_column("error")
        for f in r["failures"]:
            tf.add_row(str(f["trial_id"]), f["error"])
        con.print(tf)
    if r["jobs"] and not any(isinstance(j, dict) for j in r["jobs"]):  # plain job ids
        con.print(f"job chain: {', '.join(str(j) for j in r['jobs'])}", highlight=False)
    elif r["jobs"]:
        tj = Table(title="job chain", title_justify="left")
        keys: List[str] = []
        for j in r["jobs"]:
            keys += [k for k in (j if isinstance(j, dict) else {}) if k not in keys]
        for k in keys or ["job"]:
            tj.add_column(k)
        for j in r["jobs"]:
            tj.add_row(*([_cell(k, j.get(k, "")) for k in keys] if isinstance(j, dict) else [str(j)]))
        con.print(tj)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--top", default=5, show_default=True, help="How many best trials and failures to list.")
@user_errors
def status(path: str, as_json: bool, top: int) -> None:
    """Show an experiment's progress from its checkpoint (PATH: run directory or .h5 file).

    Safe while the experiment runs: it reads the newest complete checkpoint without locking.
    """
    report = experiment_status(path, top)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=_plain))
    else:
        print_status(report)
