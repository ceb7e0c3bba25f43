"""A deterministic NAS-Bench-201 objective with a small real delay (``objective.type: function``).

The MPI resume/kill tests need trials that take real time (so that kills land while trials are in
flight and checkpoints are written) and results that do not depend on timing: each trial sleeps
``options.sleep`` seconds (default 0.05), then looks its configuration up in the NB201 table."""
import time

from nasrun.objectives import NB201Objective
from nasrun.trial import Suggestion

_TABLE = {}


def score(config, context):
    time.sleep(float(context.options.get("sleep", 0.05)))
    path = context.options.get("path")
    if path not in _TABLE:
        _TABLE[path] = NB201Objective(path)
    outcome, _ = _TABLE[path].evaluate(Suggestion(context.trial_id, config, context.budget))
    return outcome.metrics
