"""Simulated runs: the real driver and store, N simulated groups on a virtual clock.

:func:`simulate_run` runs a validated spec's search through :class:`~nasrun.runtime.driver.
Driver` with a :class:`~nasrun.runtime.local.LocalTransport` whose trial durations are
simulated: a table objective's training times (NAS-Bench-201), or for a function objective
the time it returns (``objective.duration: {metric: train_seconds}``) or a constant
(``objective.duration: {seconds: S}``). The driver's own CPU time per event (ask, tell, logging,
commits, bookkeeping) is charged to the virtual clock, so utilization shows what rank 0 would
really do; the store is the real HDF5 store in a temporary directory (or in memory).

Results: every finished trial with its simulated start and end, the best-so-far trajectory
(the one definition of "best": :mod:`nasrun.view`), utilization (busy / (groups x makespan)),
rank-0 CPU per trial and commits per trial, and the training work: the epochs each trial
trained (a promotion continues its lower-rung trial and trains the extra epochs only; a
stopped trial the epochs it reached), so that searches can be compared on the same work
(:meth:`SimResult.within_epochs`).
"""
from __future__ import annotations

import json
import math
import statistics
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .errors import UserInputError
from .store.base import Store, TrialRecord
from .view import ExperimentView, budget_level


@dataclass
class SimResult:
    """One simulated run.

    trajectory: ``(time, trials finished, best metric so far, test accuracy of that best,
    epochs trained so far)`` after each finished trial that changed or kept the incumbent.
    """

    strategy: str
    seed: int
    workers: int
    trials: List[TrialRecord] = field(default_factory=list)
    trajectory: List[tuple] = field(default_factory=list)
    makespan: float = 0.0
    utilization: float = 0.0
    # busy / allocated until the last trial was handed out: the steady state, without the drain
    # at the end of a finite budget (groups idle while the last trials finish)
    utilization_steady: float = 0.0
    overhead_us: float = 0.0  # rank-0 CPU per trial (everything the driver did)
    commits_per_trial: float = 0.0
    stats: Dict[str, Any] = field(default_factory=dict)
    best_trial: Optional[int] = None  # the trial id of the final pick (nasrun.view's best)
    work: List[float] = field(default_factory=list)  # epochs each trial trained, as ``trials``
    view: Optional[ExperimentView] = field(default=None, repr=False)  # how the pick is chosen
    test_metric: str = "test_accuracy"

    @property
    def final(self) -> tuple:
        """(best metric, its test accuracy) at the end; NaNs when nothing finished."""
        if not self.trajectory:
            return (math.nan, math.nan)
        return self.trajectory[-1][2], self.trajectory[-1][3]

    def best_at(self, t: float) -> float:
        best = math.nan
        for p in self.trajectory:
            if p[0] > t:
                break
            best = p[2]
        return best

    def best_after(self, n: int) -> tuple:
        """(best metric, its test) after ``n`` finished trials."""
        best = (math.nan, math.nan)
        for p in self.trajectory:
            if p[1] > n:
                break
            best = (p[2], p[3])
        return best

    def time_to_reach(self, value: float, sign: float = 1.0) -> float:
        for p in self.trajectory:
            if sign * p[2] >= sign * value:
                return p[0]
        return math.inf

    def trials_to_reach(self, value: float, sign: float = 1.0) -> float:
        for p in self.trajectory:
            if sign * p[2] >= sign * value:
                return p[1]
        return math.inf

    def epochs_to_reach(self, value: float, sign: float = 1.0) -> float:
        for p in self.trajectory:
            if sign * p[2] >= sign * value:
                return p[4]
        return math.inf

    def epochs_trained(self, t: float) -> float:
        """Epochs trained by simulated time ``t``: each trial's work spread evenly over its run
        (a trial in flight at ``t`` counts the part it has done)."""
        total = 0.0
        for r, w in zip(self.trials, self.work):
            if r.start is None or r.end is None or r.start >= t:
                continue
            total += w if r.end <= t or r.end <= r.start else w * (t - r.start) / (r.end - r.start)
        return total

    def within_epochs(self, epochs: float) -> Dict[str, Any]:
        """The search cut when ``epochs`` of training were done (trials in flight count the part
        they have done): the time then, the pick (nasrun.view's best among the trials finished by
        then), its metric and test metric, the trials finished and the utilization until then."""
        t = self._time_of_work(epochs)
        done = [r for r in self.trials if r.end is not None and r.end <= t]
        view = self.view
        pick = view.best(done) if view is not None else None
        outcome = pick.outcome if pick is not None else None  # view.best picks a finished trial
        value = outcome.value(view.metric) if outcome is not None and view is not None else None
        test = outcome.metrics.get(self.test_metric) if outcome is not None else None
        busy = sum(max(0.0, min(r.end, t) - r.start) for r in self.trials
                   if r.start is not None and r.end is not None)
        return {"time": t, "trials": len(done), "pick": None if pick is None else pick.trial_id,
                "metric": math.nan if value is None else float(value),
                "test": math.nan if test is None else float(test),
                "utilization": min(1.0, busy / (self.workers * t)) if t > 0 else 0.0}

    def _time_of_work(self, epochs: float) -> float:
        """When ``epochs`` of training were done (the work rate is piecewise constant between
        trial starts and ends); ValueError when the run trained less."""
        events = []  # (time, change of the rate in epochs per second)
        for r, w in zip(self.trials, self.work):
            if r.start is None or r.end is None or w <= 0:
                continue
            if r.end <= r.start:
                events.append((r.start, math.inf, w))  # an instant trial: a step of w epochs
                continue
            rate = w / (r.end - r.start)
            events += [(r.start, rate, 0.0), (r.end, -rate, 0.0)]
        events.sort(key=lambda e: e[0])
        done, rate, now = 0.0, 0.0, 0.0
        tol = 1e-9 * max(1.0, epochs)  # the sum of floats: a trial that ends at the budget counts
        for when, d_rate, step in events:
            reach = done + rate * (when - now)
            if rate > 0 and reach >= epochs - tol:
                return when if reach <= epochs + tol else now + (epochs - done) / rate
            done += rate * (when - now)
            now = when
            if d_rate == math.inf:
                done += step
                if done >= epochs - tol:
                    return now
            else:
                rate += d_rate
        if done >= epochs - tol:
            return now
        raise ValueError(f"the run trained {done:g} epochs, fewer than {epochs:g}")

    def summary(self) -> Dict[str, Any]:
        valid, test = self.final
        return {"strategy": self.strategy, "seed": self.seed, "workers": self.workers,
                "trials": len(self.trials), "final_metric": valid, "final_test": test,
                "best_trial": self.best_trial,
                "makespan": self.makespan, "utilization": self.utilization,
                "utilization_steady": self.utilization_steady,
                "overhead_us": self.overhead_us, "commits_per_trial": self.commits_per_trial,
                "trajectory": [list(p) for p in self.trajectory]}


def _duration(spec) -> Any:
    """(outcome, suggestion, wall seconds) -> simulated seconds, from the spec."""
    o = spec.objective
    if o.type == "table":
        return lambda outcome, s, wall: float(outcome.metrics.get("simulated_seconds", 0.0))
    d = o.duration
    if d is not None and d.metric is not None:
        name = d.metric

        def from_metric(outcome, s, wall):
            v = outcome.metrics.get(name)
            return float(v) if v is not None and math.isfinite(float(v)) else 0.0
        return from_metric
    if d is not None and d.seconds is not None:
        from .runtime.driver import full_epochs
        full = full_epochs(spec)
        reached: Dict[int, float] = {}

        def share(outcome, s, wall):
            """The budget's share of ``seconds``; a promoted trial (``resume_from``) continues
            the earlier one's training and takes the extra epochs only (as the table does)."""
            epochs = full if s.budget is None else float(s.budget)
            reached[s.trial_id] = epochs
            done = reached.get(s.resume_from, 0.0) if s.resume_from is not None else 0.0
            return d.seconds * max(0.0, epochs - done) / full
        return share

    def reported(outcome, s, wall):
        v = outcome.metrics.get("train_seconds")
        if v is not None and math.isfinite(float(v)):
            return float(v)
        if not outcome.ok:
            return 0.0
        raise UserInputError("simulate needs each trial's simulated training time: return a "
                             "'train_seconds' metric from the function, or set "
                             "objective.duration ({metric: NAME} or {seconds: S})")
    return reported


def with_changes(spec, strategy: Optional[str] = None, options: Optional[Mapping[str, Any]] = None,
                 seed: Optional[int] = None, budget: Optional[Mapping[str, Any]] = None,
                 output_dir: Optional[str] = None):
    """A copy of a validated spec with another strategy / seed / budget / directory (validated)."""
    import yaml

    from .spec import dump_spec, parse_spec
    data = yaml.safe_load(dump_spec(spec))
    if strategy is not None:
        data["strategy"] = {"name": strategy, "options": dict(options or {})}
        if getattr(spec.strategy, "stopper", None) is None:
            data["strategy"].pop("stopper", None)
    elif options is not None:
        data["strategy"]["options"] = dict(options)
    if seed is not None:
        data["experiment"]["seed"] = int(seed)
    if budget is not None:
        data["budget"] = {"max_trials": None, "max_seconds": None, "target": None, **dict(budget)}
    if output_dir is not None:
        data["experiment"]["output_dir"] = output_dir
    text = yaml.safe_dump(data, sort_keys=False)
    return parse_spec(text, "<simulated spec>"), text


def simulate_run(spec, groups: int = 8, budget_seconds: Optional[float] = None,
                 max_trials: Optional[int] = None, max_epochs: Optional[float] = None,
                 store: str = "hdf5", charge_cpu: bool = True, name: str = "",
                 test_metric: str = "test_accuracy", directory: Optional[str] = None,
                 time_scale: float = 1.0) -> SimResult:
    """One simulated run of ``spec`` with ``groups`` groups (see the module docstring).
    ``time_scale`` multiplies every simulated trial duration (e.g. 0.01: trials 100x shorter,
    to find the number of groups from which rank 0 saturates)."""
    from .objectives import make_objective
    from .runtime.clock import VirtualClock
    from .runtime.driver import Driver
    from .runtime.local import LocalTransport
    from .runtime.worker import TrialRunner
    from .store import MemoryStore, open_store
    from .train.backends import LocalBackend
    if budget_seconds is None and max_trials is None and max_epochs is None:
        raise ValueError("give budget_seconds, max_trials, max_epochs or a combination")
    budget = {"max_trials": max_trials, "max_seconds": budget_seconds, "max_epochs": max_epochs}
    tmp = None
    if store == "hdf5" and directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="nasrun-sim-")
        directory = tmp.name
    try:
        spec, text = with_changes(spec, budget=budget, output_dir=directory or spec.experiment.directory)
        st: Store
        if store == "hdf5":
            assert directory is not None  # a temporary one when none was given
            st = open_store(directory)
        else:
            st = MemoryStore()
        import torch
        runner = TrialRunner(spec, make_objective(spec), LocalBackend(), torch.device("cpu"),
                             st.states, wall_time_limit=False)
        clock = VirtualClock(base=0.0, charge=charge_cpu)
        duration = _duration(spec)
        if time_scale != 1.0:
            base_duration = duration

            def duration(outcome, s, wall):
                return time_scale * base_duration(outcome, s, wall)
        transport = LocalTransport(runner, groups, clock, duration, spec.resources.trial_time_limit)
        out = Driver(spec, text, st, transport, None, echo=lambda line: None, progress=False).run()
        if store == "hdf5":
            assert directory is not None
            loaded = open_store(directory).load()
        else:
            loaded = st.load()
        assert loaded is not None  # the run has just saved the experiment
        records = sorted(loaded.state.finished_records(), key=lambda r: (r.end, r.tell_seq))
    finally:
        if tmp is not None:
            tmp.cleanup()
    res = SimResult(name or spec.strategy.name, spec.experiment.seed, groups, records)
    res.makespan = clock.t
    res.utilization = transport.busy_time / (groups * clock.t) if clock.t > 0 else 0.0
    t_steady = transport.last_start
    res.utilization_steady = (transport.busy_until(t_steady) / (groups * t_steady)
                              if t_steady > 0 else res.utilization)
    res.stats = out["stats"]
    res.overhead_us = out["stats"]["cpu_per_trial_us"]
    res.commits_per_trial = out["stats"]["commits_per_trial"]
    view = res.view = ExperimentView.from_spec(spec)
    res.test_metric = test_metric
    top_level = max((budget_level(r.suggestion.budget) for r in records), default=math.inf)
    from .runtime.driver import full_epochs
    full = full_epochs(spec)
    reached: Dict[int, float] = {}
    epochs, best = 0.0, None
    for n, r in enumerate(records, 1):
        b = full if r.suggestion.budget is None else float(r.suggestion.budget)
        if r.outcome is not None and r.outcome.stopped_at is not None:
            b = float(r.outcome.stopped_at)
        before = reached.get(r.suggestion.resume_from, 0.0) if r.suggestion.resume_from is not None else 0.0
        reached[r.trial_id] = b
        res.work.append(max(0.0, b - before))
        epochs += res.work[-1]
        if budget_seconds is not None and r.end > budget_seconds:
            continue  # finished after the time budget: does not count
        k = view.key(r)
        if k is not None and budget_level(r.suggestion.budget) >= top_level \
                and (best is None or k > best[0]):
            best = (k, r)
        if best is not None:
            res.trajectory.append((r.end, n, best[1].outcome.value(view.metric),
                                   best[1].outcome.metrics.get(test_metric, math.nan), epochs))
            res.best_trial = best[1].trial_id
    return res


NB201_TEMPLATE = """experiment: {{name: sim, seed: {seed}}}
space: {{builtin: nb201}}
strategy: {{name: {strategy}, options: {options}{dedupe}}}
objective: {{type: table, metric: {metric}, mode: {mode}{path}}}
budget: {{max_trials: 1}}
checkpoint: {{keep_best: 0}}
"""


def nb201_spec(strategy: str, options: Optional[Mapping[str, Any]] = None, seed: int = 0,
               objective_path=None, metric: str = "valid_accuracy", mode: str = "max",
               dedupe: Optional[bool] = None):
    """The spec of a search on the NAS-Bench-201 table (``objective_path``: its directory or file;
    ``dedupe``: ``strategy.dedupe``, None for the default)."""
    from .spec import parse_spec
    path = f", path: {json.dumps(str(objective_path))}" if objective_path is not None else ""
    text = NB201_TEMPLATE.format(seed=seed, strategy=strategy, options=json.dumps(dict(options or {})),
                                 metric=metric, mode=mode, path=path,
                                 dedupe="" if dedupe is None else f", dedupe: {str(dedupe).lower()}")
    return parse_spec(text, "<nb201 simulation>")


def simulate_spec(strategy: str, options: Optional[Mapping[str, Any]] = None,
                  objective_path=None, workers: int = 8, budget_seconds: Optional[float] = None,
                  max_trials: Optional[int] = None, seeds: Sequence[int] = (0,),
                  metric: str = "valid_accuracy", mode: str = "max", max_epochs=None,
                  store: str = "memory", charge_cpu: bool = False,
                  dedupe: Optional[bool] = None) -> List[SimResult]:
    """One simulated run per seed of ``strategy`` on the NAS-Bench-201 table (tests, benches)."""
    out = []
    for seed in seeds:
        spec = nb201_spec(strategy, options, seed, objective_path, metric, mode, dedupe)
        out.append(simulate_run(spec, workers, budget_seconds, max_trials, max_epochs, store,
                                charge_cpu, name=strategy))
    return out


def aggregate(results: Sequence[SimResult]) -> List[Dict[str, Any]]:
    """Per strategy: mean/std of final metric and test accuracy, trials, utilization, overhead."""
    groups: Dict[str, List[SimResult]] = {}
    for r in results:
        groups.setdefault(r.strategy, []).append(r)
    rows = []
    for name, rs in groups.items():
        v = [r.final[0] for r in rs]
        t = [r.final[1] for r in rs]
        rows.append({"strategy": name, "runs": len(rs),
                     "metric_mean": _mean(v), "metric_std": _std(v),
                     "test_mean": _mean(t), "test_std": _std(t),
                     "trials_mean": _mean([len(r.trials) for r in rs]),
                     "utilization": _mean([r.utilization for r in rs]),
                     "overhead_us": _mean([r.overhead_us for r in rs]),
                     "commits_per_trial": _mean([r.commits_per_trial for r in rs])})
    return rows


def _mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.fmean(xs) if xs else math.nan


def _std(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def render_table(title: str, headers: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
                  for i, h in enumerate(headers)]
        lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="left" if h == headers[0] else "right")
    for row in cells:
        table.add_row(*row)
    console = Console(width=160, record=True, force_terminal=False)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


__all__ = ["SimResult", "aggregate", "nb201_spec", "render_table", "simulate_run", "simulate_spec",
           "with_changes"]
