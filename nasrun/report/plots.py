"""PNG plots of an experiment (matplotlib, Agg backend, no display, no pyplot state).

Each ``plot_*`` function takes an :class:`~nasrun.report.Experiment` and an output path, writes
one PNG and returns nothing; it raises :class:`Skip` with the reason when the data it needs is
absent, so the caller can print a note and go on.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..store.base import DONE, FAILED, RUNNING, TrialRecord
from .experiment import Experiment
from .pareto import pareto_front
from .progress import busy_interval, group_utilization
from .tables import size_of

PHASE_KEYS = ("rung", "phase", "bracket", "origin", "replica")  # first one present colours trials
WIDTH, HEIGHT, DPI = 9.0, 5.5, 100  # 900 x 550 pixels


class Skip(Exception):
    """The plot's data is absent; the message says what is missing."""


def _figure(rows: int = 1, cols: int = 1, height: float = HEIGHT):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [a for row in axes for a in row]


def _save(fig, path: str) -> None:
    fig.savefig(path, dpi=DPI, format="png")


def _clock(exp: Experiment) -> Tuple[float, float, str]:
    """(t0, seconds per unit, unit name) for time axes: time since the first trial started."""
    starts = [t.start for t in exp.trials if t.start is not None]
    ends = [t.end for t in exp.trials if t.end is not None]
    if not starts:
        raise Skip("no trial has a start time")
    t0 = min(starts)
    span = max(ends + starts) - t0
    if span >= 3 * 3600:
        return t0, 3600.0, "hours"
    if span >= 180:
        return t0, 60.0, "minutes"
    return t0, 1.0, "seconds"


def _finished_in_order(exp: Experiment) -> List[TrialRecord]:
    """Done and failed trials in the order they finished (trial id when no end time)."""
    fin = [t for t in exp.trials if t.status in (DONE, FAILED)]
    return sorted(fin, key=lambda t: (t.end if t.end is not None else math.inf, t.trial_id))


def _best_so_far(values: List[Optional[float]], mode: str) -> List[float]:
    out, best = [], math.nan
    for v in values:
        if v is not None and (math.isnan(best) or (v > best if mode == "max" else v < best)):
            best = v
        out.append(best)
    return out


def _title(exp: Experiment, what: str) -> str:
    return f"{exp.name or 'experiment'}: {what}"


def plot_best_vs_time(exp: Experiment, path: str) -> None:
    """Best-so-far metric against wall time since the first trial started; each trial a dot."""
    pts = [(t.end, exp.value(t)) for t in _finished_in_order(exp) if t.end is not None]
    if not any(v is not None for _, v in pts):
        raise Skip(f"no done trial with {exp.metric} and an end time")
    t0, unit, name = _clock(exp)
    xs = [(e - t0) / unit for e, _ in pts]
    fig, (ax,) = _figure()
    ax.scatter([x for x, (_, v) in zip(xs, pts) if v is not None], [v for _, v in pts if v is not None],
               s=14, color="0.6", alpha=0.7, label="trial")
    ax.step(xs, _best_so_far([v for _, v in pts], exp.mode), where="post", color="C3", lw=2,
            label="best so far")
    ax.set(xlabel=f"wall time since first trial started ({name})", ylabel=exp.metric,
           title=_title(exp, f"best {exp.metric} ({exp.mode}) over time"))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _save(fig, path)


def plot_best_vs_trials(exp: Experiment, path: str) -> None:
    """Best-so-far metric against the number of finished trials (failed ones count)."""
    fin = _finished_in_order(exp)
    vals = [exp.value(t) for t in fin]
    if not any(v is not None for v in vals):
        raise Skip(f"no done trial with {exp.metric}")
    n = list(range(1, len(fin) + 1))
    fig, (ax,) = _figure()
    ax.scatter([i for i, v in zip(n, vals) if v is not None], [v for v in vals if v is not None],
               s=14, color="0.6", alpha=0.7, label="trial")
    fails = [i for i, t in zip(n, fin) if t.status == FAILED]
    if fails:
        ax.plot(fails, [0] * len(fails), "x", color="C3", ms=6, transform=ax.get_xaxis_transform(),
                label=f"failed ({len(fails)})", clip_on=False)
    ax.step(n, _best_so_far(vals, exp.mode), where="post", color="C3", lw=2, label="best so far")
    ax.set(xlabel="finished trials", ylabel=exp.metric,
           title=_title(exp, f"best {exp.metric} ({exp.mode}) against trials"))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    _save(fig, path)


def phase_key(exp: Experiment) -> Optional[str]:
    """The first of PHASE_KEYS that some trial's ``suggestion.info`` holds as a plain value."""
    for k in PHASE_KEYS:
        if any(isinstance(t.suggestion.info.get(k), (int, float, str)) and
               not isinstance(t.suggestion.info.get(k), bool) for t in exp.trials):
            return k
    return None


def plot_trials_vs_time(exp: Experiment, path: str) -> None:
    """Every done trial's metric at its end time, coloured by strategy phase (rung, ...)."""
    ends = [(t, t.end, exp.value(t)) for t in exp.trials if t.end is not None]
    pts = [(t, e, v) for t, e, v in ends if v is not None]
    if not pts:
        raise Skip(f"no done trial with {exp.metric} and an end time")
    t0, unit, name = _clock(exp)
    key = phase_key(exp)
    fig, (ax,) = _figure()
    if key is None:
        ax.scatter([(e - t0) / unit for _, e, _ in pts], [v for _, _, v in pts], s=18, color="C0",
                   label="trial")
    else:
        groups: Dict[Any, List[Tuple[float, float]]] = {}
        for t, e, v in pts:
            groups.setdefault(t.suggestion.info.get(key, "-"), []).append((e, v))
        order = sorted(groups, key=lambda k: (not isinstance(k, (int, float)), str(k) if not
                                              isinstance(k, (int, float)) else k))
        cmap = _colors(len(order))
        for c, k in zip(cmap, order):
            g = groups[k]
            ax.scatter([(e - t0) / unit for e, _ in g], [v for _, v in g], s=18, color=c,
                       label=f"{key} {k} ({len(g)})", alpha=0.85)
    n_fail = sum(t.status == FAILED for t in exp.trials)
    ax.set(xlabel=f"trial end, wall time since first trial started ({name})", ylabel=exp.metric,
           title=_title(exp, f"all trials' {exp.metric}"
                        + (f" ({n_fail} failed not shown)" if n_fail else "")))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small", ncol=1 + (len(ax.get_legend_handles_labels()[0]) > 8))
    _save(fig, path)


def _colors(n: int) -> List[Any]:
    from matplotlib import colormaps
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](i / max(1, n - 1)) for i in range(n)]


def plot_utilization(exp: Experiment, path: str) -> None:
    """A timeline per worker group: one bar per trial, failures red and hatched, running grey."""
    from matplotlib.patches import Patch
    util = group_utilization(exp.trials, exp.saved_at)
    if not util["groups"]:
        raise Skip("no trial has a group and start/end times")
    t0, unit, name = _clock(exp)
    as_of = t0 + util["window"]
    groups = list(util["groups"])
    fig, (ax,) = _figure(height=max(3.0, min(HEIGHT * 1.5, 1.5 + 0.45 * len(groups))))
    style: Dict[str, Dict[str, Any]] = {DONE: dict(facecolor="C0"), FAILED: dict(facecolor="C3", hatch="///"),
                                        RUNNING: dict(facecolor="0.65", hatch="..")}
    for row, g in enumerate(groups):
        for status, st in style.items():
            bars = [busy_interval(t, as_of) for t in exp.trials if t.group == g and t.status == status]
            bars = [((a - t0) / unit, (b - a) / unit) for a, b in (x for x in bars if x)]
            if bars:
                ax.broken_barh(bars, (row - 0.38, 0.76), edgecolor="white", linewidth=0.6, **st)
    ax.set_yticks(range(len(groups)),
                  [f"group {g}\n{util['groups'][g]['fraction']:.0%} busy" for g in groups])
    ax.set_ylim(len(groups) - 0.5, -0.5)
    ax.set_xlim(0, util["window"] / unit)
    ax.set(xlabel=f"wall time since first trial started ({name})",
           title=_title(exp, "worker utilization (busy time / elapsed)"))
    ax.grid(axis="x", alpha=0.3)
    fig.legend(handles=[Patch(label=s, **style[s]) for s in style
                        if any(t.status == s and t.group is not None for t in exp.trials)],
               loc="outside lower center", ncol=3, frameon=False)
    _save(fig, path)


def curve_metric(exp: Experiment, curves: Sequence[Sequence[Mapping[str, Any]]]) -> Optional[str]:
    keys = {k for c in curves for e in c for k, v in e.items() if isinstance(v, (int, float))}
    for k in (exp.metric, "valid_accuracy", "valid_loss"):
        if k in keys:
            return k
    rest = sorted(keys - {"epoch", "seconds"})
    return rest[0] if rest else None


def plot_learning_curves(exp: Experiment, path: str, top: int = 8) -> None:
    """Per-epoch curves of the best ``top`` trials: the objective metric, and valid_loss."""
    best = [t for t in exp.ranked() if t.outcome is not None and t.outcome.curve][:top]
    if not best:
        raise Skip("no learning curves recorded (outcome.curve is empty)")
    curves = [list(t.outcome.curve) for t in best if t.outcome is not None]
    first = curve_metric(exp, curves)
    if first is None:
        raise Skip("learning curves hold no numeric metric")
    keys = [first] + [k for k in ("valid_loss",) if k != first and any(k in e for c in curves for e in c)]
    fig, axes = _figure(1, len(keys))
    for ax, key in zip(axes, keys):
        for c, t, curve in zip(_colors(len(best)), best, curves):
            pts = [(e.get("epoch", i + 1), e[key]) for i, e in enumerate(curve)
                   if isinstance(e.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, color=c,
                        label=f"trial {t.trial_id} ({exp.value(t):.4g})")
        ax.set(xlabel="epoch", ylabel=key)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small", title=f"top trials by {exp.metric}")
    fig.suptitle(_title(exp, f"learning curves of the top {len(best)} trials"))
    _save(fig, path)


def size_keys(exp: Experiment) -> List[str]:
    """Which model sizes were recorded: params, and macs or flops."""
    done = [t for t in exp.trials if exp.value(t) is not None]
    have = [k for k in ("params", "macs", "flops") if any(size_of(t, k) is not None for t in done)]
    return [k for k in have if not (k == "flops" and "macs" in have)]


def plot_pareto(exp: Experiment, path: str) -> None:
    """Metric against model size (log scale), with the Pareto front (better metric, smaller)."""
    keys = size_keys(exp)
    if not keys:
        raise Skip("no model sizes recorded (metrics 'params', 'macs' or 'flops')")
    fig, axes = _figure(1, len(keys))
    for ax, key in zip(axes, keys):
        pts: List[Tuple[float, float, int]] = []
        for t in exp.trials:
            x, y = size_of(t, key), exp.value(t)
            if x is not None and y is not None:
                pts.append((x, y, t.trial_id))
        front = sorted((pts[i] for i in pareto_front([p[:2] for p in pts], ["min", exp.mode])),
                       key=lambda p: p[0])
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=16, color="0.6", alpha=0.7,
                   label=f"trials ({len(pts)})")
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="C3", lw=1.5)
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=36, color="C3", zorder=3,
                   label=f"Pareto front ({len(front)})")
        for x, y, tid in front:
            ax.annotate(str(tid), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if min(p[0] for p in pts) > 0:
            ax.set_xscale("log")
            from matplotlib.ticker import NullFormatter
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
        ax.set(xlabel=key, ylabel=exp.metric)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(_title(exp, f"{exp.metric} against model size"))
    _save(fig, path)


PLOTS: List[Tuple[str, Callable[[Experiment, str], None]]] = [
    ("best_vs_time.png", plot_best_vs_time),
    ("best_vs_trials.png", plot_best_vs_trials),
    ("trials_vs_time.png", plot_trials_vs_time),
    ("utilization.png", plot_utilization),
    ("learning_curves.png", plot_learning_curves),
    ("pareto.png", plot_pareto),
]


def write_plots(exp: Experiment, out_dir: str) -> Tuple[List[str], List[str]]:
    """Write every plot it can; returns (written paths, notes on the skipped ones)."""
    written, notes = [], []
    for name, fn in PLOTS:
        path = os.path.join(out_dir, name)
        try:
            fn(exp, path)
        except Skip as e:
            notes.append(f"{name} skipped: {e}")
            continue
        written.append(path)
    return written, notes
