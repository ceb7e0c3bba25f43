"""One view of an experiment's results: score, feasibility, Pareto front and "best".

Built from the validated spec (:meth:`ExperimentView.from_spec`), or from the spec text stored
in a checkpoint (:meth:`ExperimentView.from_text`), and used by the driver, ``nasrun status``,
``report``, ``export``, the Python API and the simulator, so they all name the same trial.

"Best" is the finished trial with the highest :class:`~nasrun.multiobjective.Scorer` score
among those at the highest budget (multi-fidelity runs: a result after the full training
outranks any lower rung; single-fidelity trials all have the full budget); ties go to the lower
trial id. Failed and infeasible trials are never best.
"""
from __future__ import annotations

import heapq
import math
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .multiobjective import Constraint, Objective, Scorer, pareto_trials
from .store.base import DONE, TrialRecord


def budget_level(budget: Optional[float]) -> float:
    """How far a trial was trained: its budget, the full budget (None) ranking highest."""
    return math.inf if budget is None else float(budget)


class ExperimentView:
    def __init__(self, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 scalarize: bool = False):
        self.scorer = Scorer(objectives, constraints, scalarize)
        self.objectives, self.constraints = list(objectives), list(constraints)
        self.metric, self.mode = self.objectives[0].metric, self.objectives[0].mode

    @classmethod
    def from_spec(cls, spec: Any) -> "ExperimentView":
        objs, cons = spec.objective_terms()
        return cls(objs, cons, spec.objective.scalarize)

    @classmethod
    def from_text(cls, spec_text: str, metric: str = "valid_accuracy", mode: str = "max"
                  ) -> "ExperimentView":
        """The view of a stored spec, read from its ``objective`` section alone (readers import
        nothing and check no paths); the stored metric/mode when that section is unusable."""
        import yaml
        try:
            data = yaml.safe_load(spec_text) or {}
            obj = data.get("objective") or {}
            terms = obj.get("objectives") or [{"metric": obj.get("metric", metric),
                                               "mode": obj.get("mode", mode)}]
            objectives = [Objective(str(t["metric"]), str(t.get("mode", "max")),
                                    float(t.get("weight", 1.0))) for t in terms]
            constraints = [Constraint(str(c["metric"]),
                                      None if c.get("min") is None else float(c["min"]),
                                      None if c.get("max") is None else float(c["max"]))
                           for c in obj.get("constraints") or []]
            return cls(objectives, constraints, bool(obj.get("scalarize", False)))
        except Exception:  # noqa: BLE001 - a spec of another version, or damaged
            return cls([Objective(metric, mode if mode in ("max", "min") else "max")])

    # -- one trial ----------------------------------------------------------------------------
    def score(self, outcome: Any) -> Optional[float]:
        return self.scorer.score(outcome)

    def feasible(self, outcome: Any) -> bool:
        return self.scorer.feasible(outcome)

    def key(self, rec: TrialRecord) -> Optional[Tuple[float, float, int]]:
        """The rank of a trial (larger is better), None when it cannot be best."""
        if rec.status != DONE or rec.outcome is None:
            return None
        s = self.score(rec.outcome)
        if s is None:
            return None
        return (budget_level(rec.suggestion.budget), s, -rec.trial_id)

    def value(self, rec: TrialRecord) -> Optional[float]:
        """The main metric of a finished trial (None when failed or missing)."""
        return rec.outcome.value(self.metric) if rec.outcome is not None else None

    # -- many trials --------------------------------------------------------------------------
    def ranked(self, records: Iterable[TrialRecord]) -> List[TrialRecord]:
        """Trials that can be best, best first."""
        keyed = [(k, r) for r in records for k in [self.key(r)] if k is not None]
        keyed.sort(key=lambda kr: kr[0], reverse=True)
        return [r for _, r in keyed]

    def best(self, records: Iterable[TrialRecord]) -> Optional[TrialRecord]:
        top = self.top(records, 1)
        return top[0] if top else None

    def top(self, records: Iterable[TrialRecord], k: int) -> List[TrialRecord]:
        keyed = ((kk, r.trial_id, r) for r in records for kk in [self.key(r)] if kk is not None)
        return [r for _, _, r in heapq.nlargest(k, keyed, key=lambda t: t[0])]

    def pareto(self, records: Iterable[TrialRecord]) -> List[TrialRecord]:
        """The feasible, non-dominated finished trials (several objectives)."""
        done = [r for r in records if r.status == DONE and r.outcome is not None]
        front = pareto_trials([r.outcome for r in done], self.objectives, self.constraints)
        ids = {o.trial_id for o in front}
        return [r for r in done if r.trial_id in ids]

    def top_of_state(self, state: Any, k: int) -> List[TrialRecord]:
        """The ``k`` best finished trials of an :class:`~nasrun.store.state.ExperimentState`,
        scoring the committed rows column-wise (no record is built for the others)."""
        cands: List[Tuple[Tuple[float, float, int], Any]] = []
        if state.table is not None:
            for block in state.table.blocks:
                c = block.cols
                ok = np.asarray(c["status"]) == b"done"
                s = self.scorer.score_matrix(block.metric_names, c["metrics"], ok)
                b = np.asarray(c["budget"], dtype=float)
                lvl = np.where(np.isnan(b), np.inf, b)
                idx = np.flatnonzero(~np.isnan(s))
                if len(idx) > k:  # keep the k best by (level, score, -id) of this block
                    order = np.lexsort((np.asarray(c["id"])[idx], -s[idx], -lvl[idx]))
                    idx = idx[order[:k]]
                for i in idx:
                    cands.append(((float(lvl[i]), float(s[i]), -int(c["id"][i])), (block, int(i))))
        for r in state.fresh:
            kk = self.key(r)
            if kk is not None:
                cands.append((kk, r))
        best = heapq.nlargest(k, cands, key=lambda t: t[0])
        out = []
        for _, where in best:
            out.append(where[0].record(where[1]) if isinstance(where, tuple) else where)
        return out
