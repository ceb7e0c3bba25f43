"""``nasrun status DIR_OR_FILE``: an experiment's progress, read from its checkpoint.

Read-only and lock-free: it opens the newest good generation (the writer only ever renames a
finished file over it), so it is safe to run while the experiment runs and never slows it down.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Dict, List, Optional

import click

from .base import experiment_at, user_errors


def experiment_status(path: str, top: int = 5) -> Dict[str, Any]:
    """The status report of the experiment at ``path`` (a run directory or a checkpoint file).

    Reads numbers column-wise: on 10^5 trials only the rows it shows become records."""
    import numpy as np

    from ..report import open_experiment
    from ..report.progress import budget_progress, utilization_of_state
    from ..store.base import DONE, FAILED, QUEUED, RUNNING

    exp = open_experiment(path)
    st, metric, mode = exp.state, exp.metric, exp.mode
    budget = {"max_trials": 20, **exp.budget}  # the spec's default when it does not say
    counts = st.statuses
    best = [{"trial_id": t.trial_id, metric: exp.value(t), "config": dict(t.suggestion.config),
             "budget": t.suggestion.budget,
             "stopped_at": t.outcome.stopped_at if t.outcome is not None else None}
            for t in exp.best(top)]
    stopped = sum(t.outcome is not None and t.outcome.stopped_at is not None for t in st.fresh)
    if st.table is not None:
        stopped += sum(int(np.count_nonzero(np.asarray(b.cols["stopped_at"]) >= 0))
                       for b in st.table.blocks)
    failed: List[Any] = [t for t in st.fresh if t.status == FAILED]
    if st.table is not None:
        for block in st.table.blocks:
            c = block.cols
            idx = np.flatnonzero(np.asarray(c["status"]) == b"failed")
            if len(idx) > top:
                order = np.lexsort((np.asarray(c["id"])[idx], np.nan_to_num(np.asarray(c["end"])[idx])))
                idx = idx[order[-top:]]
            failed += block.records(idx)
    failed.sort(key=lambda t: (t.end or 0, t.trial_id), reverse=True)
    failures = [{"trial_id": t.trial_id,
                 "error": ((t.outcome.error if t.outcome else None) or "").strip().split("\n")[0]}
                for t in failed[:top]]
    rt = exp.runtime
    elapsed = rt.get("elapsed_seconds")
    if not isinstance(elapsed, (int, float)):
        elapsed = None
    elapsed = max(float(elapsed or 0.0), float(st.elapsed)) if (elapsed is not None or st.elapsed) \
        else None
    finished = counts[DONE] + counts[FAILED]
    util = utilization_of_state(st, exp.saved_at)
    progress = budget_progress(budget, finished, elapsed)
    return {"experiment": exp.name, "file": exp.file,
            "generation": exp.generation, "saved_at": exp.saved_at, "metric": metric, "mode": mode,
            "max_trials": budget.get("max_trials"),
            "trials": {"total": finished + len(st.live), DONE: counts[DONE],
                       RUNNING: counts[RUNNING], QUEUED: counts[QUEUED], FAILED: counts[FAILED],
                       "stopped": stopped},
            "best": best, "failures": failures, "jobs": list(st.jobs),
            "elapsed_seconds": float(elapsed) if elapsed is not None else None,
            "progress": progress, "ended": progress["fraction"] == 1.0 and not counts[RUNNING],
            "utilization": {"window_seconds": util["window"],
                            "groups": [{"group": g, **u} for g, u in util["groups"].items()]},
            "warnings": list(exp.warnings)}


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
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _cell(key: str, v: Any) -> str:
    if isinstance(v, (int, float)) and v > 1e9 and any(w in key for w in ("start", "end", "time")):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    return str(v)


def render_status(r: Dict[str, Any], top: int = 5):
    """The report as one rich renderable (printed once, or refreshed by ``--watch``)."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    parts: List[Any] = [Text.from_markup("[yellow]warning:[/] ") + Text(w) for w in r["warnings"]]
    t = r["trials"]
    finished = t["done"] + t["failed"]
    of = f" of {r['max_trials']}" if r["max_trials"] else ""
    parts.append(Text.from_markup(f"[bold]{r['experiment'] or '(unnamed)'}[/]  ") + Text(
        f"{r['file']} (generation {r['generation']}, saved {_duration(time.time() - r['saved_at'])} ago)"))
    early = f" ({t['stopped']} stopped early)" if t.get("stopped") else ""
    parts.append(Text(f"trials: {finished}{of} finished ({t['done']} done{early}, {t['failed']} "
                      f"failed), {t['running']} running, {t['queued']} queued"))
    p = r.get("progress") or {}
    grid = Table.grid(padding=(0, 1))
    if p.get("fraction") is not None:
        limits = [f"{p['max_trials']} trials" if p.get("max_trials") else None,
                  _duration(p["max_seconds"]) if p.get("max_seconds") else None]
        grid.add_row("budget", ProgressBar(total=1.0, completed=p["fraction"], width=24),
                     f"{p['fraction']:.0%} of {' / '.join(x for x in limits if x)}")
    rate = f" at {p['trials_per_hour']:.3g} trials/h" if p.get("trials_per_hour") else ""
    eta = ("ended" if r.get("ended") else "ETA " + (_duration(p["eta_seconds"]) + rate
           if p.get("eta_seconds") is not None else "unknown (no finished trial yet)"))
    grid.add_row("" if p.get("fraction") is not None else "time", "",
                 f"elapsed {_duration(r['elapsed_seconds'])}, {eta}")
    parts.append(grid)
    if r["best"]:
        b0 = r["best"][0]
        parts.append(Text(f"best so far: trial {b0['trial_id']}, {r['metric']} {b0[r['metric']]:.6g}"))
        tb = Table(title=f"best trials ({r['metric']}, {r['mode']})", title_justify="left")
        for c in ("trial", r["metric"], "budget", "stopped at", "config"):
            tb.add_column(c)
        for b in r["best"]:
            at = b.get("stopped_at")
            tb.add_row(str(b["trial_id"]), f"{b[r['metric']]:.6g}", str(b["budget"] or "-"),
                       "-" if at is None else f"epoch {at}", json.dumps(b["config"], default=_plain))
        parts.append(tb)
    u = r.get("utilization") or {}
    if u.get("groups"):
        parts += _group_table(u["groups"], u["window_seconds"], top)
    if r["failures"]:
        tf = Table(title="recent failures", title_justify="left")
        tf.add_column("trial")
        tf.add_column("error")
        for f in r["failures"]:
            tf.add_row(str(f["trial_id"]), f["error"])
        parts.append(tf)
    if r["jobs"] and not any(isinstance(j, dict) for j in r["jobs"]):  # plain job ids
        parts.append(Text(f"job chain: {', '.join(str(j) for j in r['jobs'])}"))
    elif r["jobs"]:
        tj = Table(title="job chain", title_justify="left", min_width=20)
        keys: List[str] = []
        for j in r["jobs"]:
            keys += [k for k in (j if isinstance(j, dict) else {}) if k not in keys]
        for k in keys or ["job"]:
            tj.add_column(k)
        for j in r["jobs"]:
            tj.add_row(*([_cell(k, j.get(k, "")) for k in keys] if isinstance(j, dict) else [str(j)]))
        parts.append(tj)
    return Group(*parts)


#: above this many worker groups the text report summarizes them (``--json`` lists every group)
GROUPS_LISTED = 16


def _group_table(groups: List[Dict[str, Any]], window: float, top: int) -> List[Any]:
    """Every group's line, or, for more than GROUPS_LISTED groups, a summary line and the ``top``
    least busy groups: a 1,024-group run is read for its stragglers, not line by line."""
    from rich.table import Table
    from rich.text import Text

    def pct(f: float) -> str:
        return f"{f:.0%}" if math.isfinite(f) else "-"

    out: List[Any] = []
    shown = groups
    title = f"worker groups (utilization = busy / {_duration(window)})"
    if len(groups) > GROUPS_LISTED:
        fr = sorted(g["fraction"] for g in groups if math.isfinite(g["fraction"]))
        if fr:
            out.append(Text(f"{len(groups)} worker groups: utilization mean {pct(sum(fr) / len(fr))}, "
                            f"min {pct(fr[0])}, median {pct(fr[len(fr) // 2])}, max {pct(fr[-1])}; "
                            f"{sum(g['trials'] for g in groups)} trials, "
                            f"{sum(g['failed'] for g in groups)} failed (all groups: --json)"))
        key = lambda g: (g["fraction"] if math.isfinite(g["fraction"]) else -1.0, g["group"])  # noqa: E731
        shown = sorted(groups, key=key)[:max(1, top)]
        title = f"least busy {len(shown)} of {len(groups)} groups (busy / " \
                f"{_duration(window)})"
    tu = Table(title=title, title_justify="left", min_width=50)
    for c in ("group", "trials", "failed", "busy", "utilization"):
        tu.add_column(c, justify="right")
    for g in shown:
        tu.add_row(str(g["group"]), str(g["trials"]), str(g["failed"]), _duration(g["busy"]),
                   pct(g["fraction"]))
    return out + [tu]


def print_status(r: Dict[str, Any], top: int = 5) -> None:
    from rich.console import Console
    Console().print(render_status(r, top))


def watch_status(path: str, top: int, every: float) -> None:
    """Redraw the status every ``every`` seconds until the run has ended (or Ctrl-C)."""
    from rich.live import Live
    r = experiment_status(path, top)
    with Live(render_status(r, top), auto_refresh=False) as live:
        try:
            while not r["ended"]:
                time.sleep(every)
                r = experiment_status(path, top)
                live.update(render_status(r, top), refresh=True)
        except KeyboardInterrupt:  # the normal way to stop watching a run that goes on
            pass


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--top", default=5, show_default=True, help="How many best trials and failures to list.")
@click.option("--watch", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Refresh every SECONDS until the run has ended (Ctrl-C stops).")
@user_errors
def status(path: str, as_json: bool, top: int, watch: Optional[float]) -> None:
    """Show an experiment's progress from its checkpoint (PATH: run directory or .h5 file).

    Safe while the experiment runs: it reads the newest complete checkpoint without locking.
    """
    with experiment_at(path):
        if watch is not None and not as_json:
            return watch_status(path, top, watch)
        report = experiment_status(path, top)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=_plain))
    else:
        print_status(report, top)
