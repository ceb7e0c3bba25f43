"""``index.html``: the leaderboard and the plots (relative links), one self-contained page."""
from __future__ import annotations

import json
import os
from html import escape
from typing import Any, Dict, List

from .experiment import Experiment
from .tables import human

CSS = ("body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;"
       "font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
       "th{background:#eee}img{max-width:100%;margin:1em 0;border:1px solid #ddd}code{font-size:85%}")


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key in ("params", "macs", "flops"):
        return human(v)
    if key == "duration":
        return f"{v:.0f} s"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return f"<code>{escape(json.dumps(v))}</code>"
    return escape(str(v))


def write_html(exp: Experiment, rows: List[Dict[str, Any]], plots: List[str], notes: List[str],
               summary: List[str], path: str) -> None:
    cols = [c for c in (rows[0] if rows else []) if any(r[c] is not None for r in rows)]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(exp.name or 'nasrun')}"
           f" report</title><style>{CSS}</style></head><body>",
           f"<h1>{escape(exp.name or 'experiment')}</h1>",
           "<p>" + "<br>".join(escape(s) for s in summary) + "</p>",
           f"<h2>Top {len(rows)} trials by {escape(exp.metric)} ({escape(exp.mode)})</h2><table><tr>"
           + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_fmt(c, r[c])}</td>" for c in cols) + "</tr>")
    out.append("</table><p>All trials: <a href='trials.csv'>trials.csv</a>, "
               "<a href='trials.json'>trials.json</a></p><h2>Plots</h2>")
    base = os.path.dirname(path)
    for p in plots:
        rel = os.path.relpath(p, base)
        out.append(f"<h3>{escape(rel)}</h3><img src='{escape(rel)}' alt='{escape(rel)}'>")
    if notes:
        out.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
