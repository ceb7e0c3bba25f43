"""Reports on an experiment: leaderboard, trial tables (CSV/JSON), plots (PNG) and an HTML page.

Everything here reads a :class:`~nasrun.store.Snapshot` (through :func:`open_experiment`) and
never writes to the experiment. Plotting needs matplotlib (imported lazily, Agg backend);
:mod:`nasrun.report.progress` and :mod:`nasrun.report.pareto` import nothing heavy, so
``nasrun status`` can use them.
"""
from .experiment import Experiment, find_trial, open_experiment
from .pareto import pareto_front

__all__ = ["Experiment", "find_trial", "open_experiment", "pareto_front"]
