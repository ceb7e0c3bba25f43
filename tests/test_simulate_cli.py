"""`nasrun simulate`: the spec's strategy (and others to compare) on the NB201 table."""
import json
import os

from click.testing import CliRunner

from nasrun.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_simulate_compares_strategies_and_writes_json(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "sim.json"
    r = CliRunner().invoke(main, ["simulate", "configs/nb201-tabular.yaml", "--workers", "4", "--max-trials", "40",
                                  "--seeds", "2", "--compare", "random", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "evolution" in r.output and "random" in r.output and "4 workers" in r.output
    runs = json.loads(out.read_text())
    assert [(x["strategy"], x["seed"]) for x in runs] == [("evolution", 0), ("evolution", 1), ("random", 0),
                                                          ("random", 1)]
    for x in runs:
        assert x["trials"] == 40
        assert 0.0 < x["utilization"] <= 1.0
        assert 80.0 < x["final"][0] <= 91.61  # a real NB201 valid accuracy, at most the table's best
        best = [p[2] for p in x["trajectory"]]
        assert best == sorted(best)  # best-so-far never gets worse


def test_simulate_refuses_other_spaces_and_strategies(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, ["simulate", "configs/default.yaml"])
    assert r.exit_code == 2 and "builtin: nb201" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["simulate", "configs/nb201-tabular.yaml", "--compare", "randon"])
    assert r.exit_code == 2 and "unknown strategy 'randon'" in r.output
