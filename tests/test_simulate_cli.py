"""`nasrun simulate`: the real driver and store with simulated groups, on the NB201 table and on
function objectives (durations from a `train_seconds` metric or from objective.duration)."""
import json
import os

import pytest
from click.testing import CliRunner

from nasrun.cli import main
from nasrun.objectives import load_nb201
from nasrun.simulate import simulate_run, with_changes
from nasrun.spec import parse_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "tests")
NB201 = os.path.join(os.path.dirname(ROOT), "shared", "benchmarks", "nb201")


def simulate(*args):
    return CliRunner().invoke(main, ["simulate", *map(str, args)])


def function_spec(extra_objective="", strategy="{name: random}", budget="{max_trials: 12}"):
    return f"""
experiment: {{name: fn-sim, seed: 1}}
space: {{builtin: chain, options: {{kind: cnn, max_layers: 3, widths: [8, 16, 32]}}}}
strategy: {strategy}
objective:
  type: function
  function: "objectives_for_tests:sized"
  python_path: ["{HERE}"]
  {extra_objective}
budget: {budget}
"""


def check_run(x, trials):
    assert x["trials"] == trials and 0.0 < x["utilization"] <= 1.0
    best = [p[2] for p in x["trajectory"]]
    assert best == sorted(best)  # best-so-far never gets worse (mode max)
    counts = [p[1] for p in x["trajectory"]]
    assert counts == sorted(counts) and counts[-1] == trials


def test_simulate_compares_strategies_and_writes_json(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "sim.json"
    r = simulate("configs/nb201-tabular.yaml", "--workers", 4, "--max-trials", 40, "--seeds", 2,
                 "--compare", "random", "--store", "memory", "--json", out)
    assert r.exit_code == 0, r.output
    assert "evolution" in r.output and "random" in r.output and f"wrote {out}" in r.output
    doc = json.loads(out.read_text())
    # the title names the table's data set and the run's shape
    assert doc["title"] == "NAS-Bench-201 CIFAR-10, 4 groups, 40 trials, 2 seed(s)"
    assert doc["title"] in r.output
    assert {k: [(x["strategy"], x["seed"]) for x in v] for k, v in doc["runs"].items()} == {
        "evolution": [("evolution", 0), ("evolution", 1)], "random": [("random", 0), ("random", 1)]}
    best_valid = float(load_nb201(NB201).valid200.max())
    for x in doc["runs"]["evolution"] + doc["runs"]["random"]:
        check_run(x, 40)
        assert 80.0 < x["final_metric"] <= best_valid  # a real NB201 valid accuracy
        assert 80.0 < x["final_test"] <= 100.0 and x["best_trial"] in range(40)
    rows = {row["strategy"]: row for row in doc["rows"]}
    assert sorted(rows) == ["evolution", "random"]
    finals = [x["final_metric"] for x in doc["runs"]["random"]]
    assert doc["random_final"] == pytest.approx(sum(finals) / 2)
    for name, row in rows.items():
        runs = doc["runs"][name]
        assert row["seeds"] == 2 and row["trials"] == 40
        assert row["valid_mean"] == pytest.approx(sum(x["final_metric"] for x in runs) / 2)
        assert row["test_mean"] == pytest.approx(sum(x["final_test"] for x in runs) / 2)
        assert row["utilization"] == pytest.approx(sum(x["utilization"] for x in runs) / 2)
        reached = [x["trajectory"] for x in runs
                   if any(p[2] >= doc["random_final"] for p in x["trajectory"])]
        assert row["reached"] == f"{len(reached)}/2"
        assert row["rank0_us_per_trial"] > 0 and row["commits_per_trial"] > 0


def test_compare_takes_strategy_options(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "sim.json"
    r = simulate("configs/nb201-tabular.yaml", "--workers", 2, "--max-trials", 12,
                 "--store", "memory", "--compare", "evolution:population_size=5,sample_size=2",
                 "--json", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert list(doc["runs"]) == ["evolution", "evolution:population_size=5,sample_size=2",
                                 "random (reference)"]
    for runs in doc["runs"].values():
        check_run(runs[0], 12)
    # the options reach the strategy: after 5 random trials evolution mutates (the spec's own
    # population of 20 would still be sampling at random)
    from nasrun.spec import load_spec
    spec = load_spec("configs/nb201-tabular.yaml")
    for opts, first_mutation in (({"population_size": 5, "sample_size": 2}, 5), (None, None)):
        s, _ = with_changes(spec, strategy="evolution", options=opts) if opts else (spec, None)
        res = simulate_run(s, 2, max_trials=12, store="memory", charge_cpu=False)
        origins = {t.trial_id: t.suggestion.info["origin"] for t in res.trials}
        mutated = sorted(i for i, o in origins.items() if o == "mutation")
        assert (mutated[0] if mutated else None) == first_mutation
        assert mutated == ([] if opts is None else list(range(5, 12)))


def test_max_epochs_budgets_training_work(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "sim.json"
    r = simulate("configs/nb201-tabular.yaml", "--workers", 4, "--max-epochs", 2000,
                 "--store", "memory", "--compare", "asha", "--json", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["title"] == "NAS-Bench-201 CIFAR-10, 4 groups, 2000 epochs, 1 seed(s)"
    runs = {k: v[0] for k, v in doc["runs"].items()}
    assert list(runs) == ["evolution", "asha", "random (reference)"]
    for name in ("evolution", "random (reference)"):  # a full NB201 trial is 200 epochs
        assert runs[name]["trials"] == 10 and runs[name]["trajectory"][-1][4] == 2000.0
    # ASHA spends the same work on more, shorter trials (promotions count their extra epochs)
    # the budget stops dispatch once the work done and in flight reaches it, so the last trials
    # started may overrun it by less than one full trial (200 epochs)
    asha = runs["asha"]
    assert asha["trials"] > 10 and 2000.0 <= asha["trajectory"][-1][4] < 2200.0
    r = simulate("configs/nb201-tabular.yaml", "--max-epochs", 0)
    assert r.exit_code == 2 and "Traceback" not in r.output


@pytest.mark.parametrize("name,table", [("file", "cifar10_200epochs.csv"), ("renamed", None)])
def test_table_path_may_name_the_file_and_the_title_names_the_data_set(tmp_path, name, table):
    if table is None:  # a directory holding one data set's tables, under another name
        for epochs in (200, 12):
            os.symlink(os.path.join(NB201, f"cifar10_{epochs}epochs.csv"),
                       tmp_path / f"ImageNet16-120_{epochs}epochs.csv")
        path, title = tmp_path, "NAS-Bench-201 ImageNet16-120"
    else:
        path, title = os.path.join(NB201, table), "NAS-Bench-201 CIFAR-10"
    (tmp_path / "spec.yaml").write_text(f"""
experiment: {{name: t, seed: 0}}
space: {{builtin: nb201}}
strategy: {{name: random}}
objective: {{type: table, path: "{path}"}}
budget: {{max_trials: 6}}
""")
    r = simulate(tmp_path / "spec.yaml", "--workers", 2, "--store", "memory",
                 "--json", tmp_path / "s.json")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["title"] == f"{title}, 2 groups, 6 trials, 1 seed(s)"
    check_run(doc["runs"]["random"][0], 6)


def test_function_objective_durations_from_train_seconds(tmp_path):
    for extra in ("", "duration: {metric: train_seconds}"):  # the default reads train_seconds
        spec = parse_spec(function_spec(extra))
        res = simulate_run(spec, 3, max_trials=12, store="memory", charge_cpu=False)
        assert len(res.trials) == 12
        for t in res.trials:
            assert t.end - t.start == pytest.approx(t.outcome.metrics["train_seconds"], abs=1e-9)
        busy = sum(t.outcome.metrics["train_seconds"] for t in res.trials)
        assert res.makespan == pytest.approx(max(t.end for t in res.trials))
        assert res.utilization == pytest.approx(busy / (3 * res.makespan))
        best = max(res.trials, key=lambda t: (t.outcome.metrics["valid_accuracy"], -t.trial_id))
        assert res.best_trial == best.trial_id
        m = best.outcome.metrics
        assert res.final == (m["valid_accuracy"], m["test_accuracy"])
    (tmp_path / "spec.yaml").write_text(function_spec())
    out = tmp_path / "sim.json"
    r = simulate(tmp_path / "spec.yaml", "--workers", 3, "--json", out)  # the real HDF5 store
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["title"] == "fn-sim (function objective), 3 groups, 12 trials, 1 seed(s)"
    (x,) = doc["runs"]["random"]
    check_run(x, 12)
    # random search asks the same trials whatever the timing: the same pick as above
    assert x["best_trial"] == res.best_trial and x["final_metric"] == res.final[0]
    assert x["makespan"] >= res.makespan  # rank 0's own CPU time is charged on top


def test_function_objective_duration_in_seconds_per_full_budget():
    spec = parse_spec(function_spec("fidelity: {min: 1, max: 9, integer: true}\n  duration: {seconds: 90}",
                                    strategy="{name: asha}", budget="{max_trials: 30}"))
    res = simulate_run(spec, 4, max_trials=30, store="memory", charge_cpu=False)
    by_id = {t.trial_id: t for t in res.trials}
    promoted = [t for t in res.trials if t.suggestion.resume_from is not None]
    assert promoted and {t.suggestion.budget for t in res.trials} >= {1.0, 3.0, 9.0}
    for t in res.trials:  # 10 s per epoch; a promotion trains (and takes) the extra epochs only
        rf = t.suggestion.resume_from
        before = 0.0 if rf is None else by_id[rf].suggestion.budget
        assert t.end - t.start == pytest.approx(10.0 * (t.suggestion.budget - before), abs=1e-9)
    spec = parse_spec(function_spec("duration: {seconds: 50}"))
    res = simulate_run(spec, 4, max_trials=8, store="memory", charge_cpu=False)
    assert [t.end - t.start for t in res.trials] == [50.0] * 8
    assert res.makespan == 100.0 and res.utilization == 1.0  # 8 trials of 50 s on 4 groups


def test_bad_input_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "spec.yaml").write_text(function_spec().replace("sized", "score"))
    cases = [
        (["configs/nb201-tabular.yaml", "--compare", "randon"], "unknown strategy 'randon'"),
        (["configs/nb201-tabular.yaml", "--compare", "evolution:populaton_size=5"],
         "--compare evolution:populaton_size=5: <simulated spec>:12: "
         "strategy.options.populaton_size"),
        (["configs/nb201-tabular.yaml", "--compare", "evolution:population_size"],
         "expected NAME or NAME:key=value"),
        # a function objective that says nothing about its training time
        ([tmp_path / "spec.yaml", "--max-trials", 2],
         "simulate needs each trial's simulated training time"),
        # a bad --compare is refused before any run starts: the spec's own strategy ran no trial
        ([tmp_path / "logged.yaml", "--compare", "evolution:populaton_size=5"],
         "did you mean 'population_size'"),
    ]
    log = tmp_path / "trials.log"
    (tmp_path / "logged.yaml").write_text(function_spec(f'options: {{log: "{log}"}}'))
    for args, message in cases:
        r = simulate(*args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)
    assert not log.exists()
    assert simulate(tmp_path / "logged.yaml", "--store", "memory").exit_code == 0
    assert log.read_text().split() == [str(i) for i in range(12)]  # the log works when trials run
