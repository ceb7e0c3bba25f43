"""A test-only store that keeps the snapshot as JSON (arrays as lists), for cross-process tests."""
import json
import os

import numpy as np

from nasrun.store import ModelState, Snapshot, Store, TrialRecord
from nasrun.trial import Outcome, Suggestion


class JsonStore(Store):
    def __init__(self, path):
        self.path = path

    def save(self, snap):
        d = {"spec_text": snap.spec_text, "version": snap.version,
             "trials": [{"suggestion": r.suggestion.to_dict(), "status": r.status, "group": r.group,
                         "start": r.start, "end": r.end, "job_id": r.job_id,
                         "outcome": r.outcome.to_dict() if r.outcome else None} for r in snap.trials],
             "strategy_state": snap.strategy_state, "runtime_state": snap.runtime_state,
             "models": {str(k): {"epoch": m.epoch, "meta": m.meta,
                                 "tensors": {n: [str(a.dtype), list(a.shape), a.ravel().tolist()]
                                             for n, a in m.tensors.items()}}
                        for k, m in snap.models.items()}}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(d, f, default=lambda a: a.tolist())  # numpy arrays (RNG states) as lists
        os.replace(tmp, self.path)

    def load(self):
        if not os.path.exists(self.path):
            return None
        with open(self.path) as f:
            d = json.load(f)
        trials = [TrialRecord(Suggestion.from_dict(t["suggestion"]), t["status"],
                              Outcome.from_dict(t["outcome"]) if t["outcome"] else None, t["group"],
                              t["start"], t["end"], t["job_id"]) for t in d["trials"]]
        models = {int(k): ModelState(int(k), m["epoch"],
                                     {n: np.array(v, dtype=dt).reshape(sh) for n, (dt, sh, v)
                                      in m["tensors"].items()}, m["meta"])
                  for k, m in d["models"].items()}
        return Snapshot(d["spec_text"], d["version"], trials, d["strategy_state"], d["runtime_state"],
                        models)
