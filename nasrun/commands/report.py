"""``nasrun report DIR_OR_FILE``: leaderboard, trials.csv/json, PNG plots and optional HTML.

Read-only, like ``nasrun status``: safe while the experiment runs.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import click

from ..errors import UserInputError
from .base import experiment_at, user_errors


def _summary(exp) -> List[str]:
    from ..report.progress import finished_count
    counts: Dict[str, int] = {}
    for t in exp.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    return [f"{exp.file} (generation {exp.generation})",
            f"{len(exp.trials)} trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f"; {finished_count(exp.trials)} finished",
            f"objective: {exp.mode} {exp.metric}"]


def build_report(path: str, out: Optional[str] = None, top: int = 10, html: bool = False,
                 echo=click.echo) -> Dict[str, Any]:
    """Write the report of the experiment at ``path`` into ``out`` (default ``<run dir>/report``).

    Returns ``{"out", "files", "notes", "leaderboard"}``. Raises UserInputError (exit 2) when
    no trial has finished with a value of the objective's metric yet.
    """
    from ..report import open_experiment
    from ..report.html import write_html
    from ..report.plots import write_plots
    from ..report.tables import leaderboard, write_csv, write_json, write_leaderboard_csv

    if top < 1:
        raise UserInputError(f"--top must be at least 1, got {top}")
    exp = open_experiment(path)
    for w in exp.warnings:
        echo(f"warning: {w}")
    rows = leaderboard(exp, top)
    if not rows:
        n = {s: sum(t.status == s for t in exp.trials) for s in ("failed", "running", "queued")}
        raise UserInputError(f"{exp.file}: no finished trial yet with a value of {exp.metric} "
                             f"({len(exp.trials)} trials: {n['failed']} failed, {n['running']} "
                             f"running, {n['queued']} queued); nothing to report")
    out = out or os.path.join(exp.directory, "report")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"--out {out}: cannot create the directory ({e.strerror})") from None
    files = [os.path.join(out, n) for n in ("leaderboard.csv", "trials.csv", "trials.json")]
    write_leaderboard_csv(exp, rows, files[0])
    write_csv(exp, files[1])
    write_json(exp, files[2])
    plots, notes = write_plots(exp, out)
    files += plots
    if html:
        files.append(os.path.join(out, "index.html"))
        write_html(exp, rows, plots, notes, _summary(exp), files[-1])
    return {"experiment": exp, "out": out, "files": files, "notes": notes, "leaderboard": rows}


def _leader_cell(c: str, v: Any) -> str:
    from ..report.tables import human
    if c in ("params", "macs", "flops"):
        return human(v)
    if v is None:
        return "-"
    if c == "duration":
        return f"{v:.0f}s"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


HEADERS = {"rank": "#", "id": "trial", "duration": "time", "group": "grp"}


def print_leaderboard(exp, rows: List[Dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    cols = [c for c in rows[0] if c not in ("config", "group") and any(r[c] is not None for r in rows)]
    tb = Table(title=f"top {len(rows)} trials by {exp.metric} ({exp.mode})", title_justify="left")
    cells = [[_leader_cell(c, r[c]) for c in cols] for r in rows]
    for i, c in enumerate(cols):  # values never wrap, long headers may
        tb.add_column(HEADERS.get(c, c), min_width=max(len(row[i]) for row in cells),
                      overflow="fold", justify="left" if c == "id" else "right")
    tb.add_column("config", overflow="fold", min_width=24)
    for row, r in zip(cells, rows):
        tb.add_row(*row, config_text(r["config"]))
    Console().print(tb)


def config_text(config: Dict[str, Any]) -> str:
    """``k=v`` pairs, floats to 4 significant digits (the CSV/JSON keep full precision)."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={json.dumps(v)}"
                    if not isinstance(v, str) else f"{k}={v}" for k, v in config.items())


@click.command()
@click.argument("path", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory for the report files (default: <run dir>/report).")
@click.option("--top", default=10, show_default=True, help="Trials in the leaderboard.")
@click.option("--html", "html", is_flag=True, help="Also write index.html with the plots.")
@user_errors
def report(path: str, out: Optional[str], top: int, html: bool) -> None:
    """Leaderboard, trials.csv/trials.json and plots of an experiment (PATH: run dir or .h5 file).

    Safe while the experiment runs. Exit 2 when PATH is not an experiment or no trial has
    finished yet.
    """
    with experiment_at(path):
        r = build_report(path, out, top, html)
    print_leaderboard(r["experiment"], r["leaderboard"])
    for n in r["notes"]:
        click.echo(f"note: {n}")
    click.echo(f"wrote {len(r['files'])} files to {r['out']}:")
    for f in r["files"]:
        click.echo(f"  {f}")
