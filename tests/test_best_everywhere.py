"""One view of "best" (issue 12): with a constraint that the most accurate trials violate,
`nasrun status`, `nasrun report`, `nasrun export --best`, `nasrun.api.best_trial` and
`nasrun simulate` all name the same feasible trial."""
import csv
import json
import os

from click.testing import CliRunner

from nasrun.api import Trial, best_trial
from nasrun.cli import main
from nasrun.multiobjective import Constraint
from nasrun.simulate import simulate_run
from nasrun.spec import parse_spec
from nasrun.store import open_store

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_PARAMS = 40000.0


def spec_text(out_dir):
    return f"""
experiment: {{name: feasible, seed: 3, output_dir: {out_dir}}}
space: {{builtin: chain, options: {{kind: cnn, max_layers: 3, widths: [8, 16, 32]}}}}
strategy: {{name: random}}
objective:
  type: function
  function: "objectives_for_tests:sized"
  python_path: ["{HERE}"]
  metric: valid_accuracy
  mode: max
  constraints: [{{metric: params, max: {MAX_PARAMS}}}]
  duration: {{metric: train_seconds}}
budget: {{max_trials: 24}}
"""


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def test_status_report_export_api_and_simulate_name_the_same_feasible_trial(tmp_path):
    run = tmp_path / "run"
    text = spec_text(run)
    (tmp_path / "spec.yaml").write_text(text)
    # the experiment: a simulated run of the spec (4 groups), kept in the real HDF5 store
    sim = simulate_run(parse_spec(text), groups=4, max_trials=24, store="hdf5", directory=str(run),
                       charge_cpu=False)
    records = sorted(open_store(str(run)).load().state.finished_records(), key=lambda r: r.trial_id)
    assert len(records) == 24 and all(r.status == "done" for r in records)
    acc = {r.trial_id: r.outcome.metrics["valid_accuracy"] for r in records}
    feasible = [r.trial_id for r in records if r.outcome.metrics["params"] <= MAX_PARAMS]
    by_metric = max(acc, key=acc.get)
    best = max(feasible, key=acc.get)
    # what makes the case: the most accurate trial is infeasible, and another one is feasible
    assert records[by_metric].outcome.metrics["params"] > MAX_PARAMS and best != by_metric

    status = json.loads(cli("status", run, "--json").output)
    assert status["best"][0]["trial_id"] == best
    assert by_metric not in [b["trial_id"] for b in status["best"]]

    cli("report", run, "--out", tmp_path / "report")
    with open(tmp_path / "report" / "leaderboard.csv", newline="") as f:
        board = list(csv.DictReader(f))
    assert int(board[0]["id"]) == best and board[0]["rank"] == "1"
    assert by_metric not in [int(r["id"]) for r in board]

    r = cli("export", run, "--best", "--out", tmp_path / "export")
    assert f"exported trial {best} " in r.output
    assert json.loads((tmp_path / "export" / "recipe.json").read_text())["trial_id"] == best

    trials = [Trial(r.suggestion, r.outcome) for r in records]
    pick = best_trial(trials, "valid_accuracy", "max", [Constraint("params", max=MAX_PARAMS)])
    assert pick.suggestion.trial_id == best
    assert best_trial(trials, "valid_accuracy", "max").suggestion.trial_id == by_metric

    assert sim.best_trial == best and sim.final == (acc[best], acc[best] - 0.02)
    # the command: random search on the same seed asks the same 24 trials
    cli("simulate", tmp_path / "spec.yaml", "--workers", 4, "--json", tmp_path / "sim.json")
    (only,) = json.loads((tmp_path / "sim.json").read_text())["runs"]["random"]
    assert only["best_trial"] == best and only["final_metric"] == acc[best]
