"""A deterministic NAS-Bench-201 objective with a small real delay (``objective.type: function``).

The MPI resume/kill tests need trials that take real time (so that kills land while trials are in
flight and checkpoints are written) and results that do not depend on timing: each trial sleeps
``options.sleep`` seconds (default 0.05), then looks its configuration up in the NB201 table.

Test hooks (environment): ``NASRUN_TEST_HANG_TRIALS="2,3"`` makes those trials sleep 120 s
(a trial that cannot be interrupted); ``NASRUN_TEST_MARK_DIR=DIR`` makes every trial create
``DIR/started-<id>`` when it starts."""
import os
import time
from typing import Dict

from nasrun.objectives import NB201Objective
from nasrun.trial import Suggestion

_TABLE: Dict[str, NB201Objective] = {}


def score(config, context):
    mark = os.environ.get("NASRUN_TEST_MARK_DIR")
    if mark:
        open(os.path.join(mark, f"started-{context.trial_id}"), "w").close()
    hang = os.environ.get("NASRUN_TEST_HANG_TRIALS", "")
    if str(context.trial_id) in hang.split(","):
        time.sleep(120)
    time.sleep(float(context.options.get("sleep", 0.05)))
    path = context.options.get("path")
    if path not in _TABLE:
        _TABLE[path] = NB201Objective(path)
    outcome, _ = _TABLE[path].evaluate(Suggestion(context.trial_id, config, context.budget))
    return outcome.metrics
