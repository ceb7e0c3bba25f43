"""The click group: every command has --help; validate prints a one-screen summary."""
import os

from click.testing import CliRunner

from nasrun import __version__
from nasrun.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_command_has_help():
    runner = CliRunner()
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0 and "Exit codes" in r.output
    assert {"validate", "init"} <= set(main.commands)
    for name in main.commands:
        r = runner.invoke(main, [name, "--help"])
        assert r.exit_code == 0, (name, r.output)
        assert "Usage:" in r.output and name in r.output


def test_version():
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_validate_summary(monkeypatch):
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, ["validate", "configs/default.yaml"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) <= 24
    assert lines[0] == "configs/default.yaml: valid"
    text = r.output
    assert "digits-default" in text and "evolution" in text and "maximize valid_accuracy" in text
    assert "20 trials" in text and "configurations" not in text.split("space")[0]


def test_unknown_command_is_a_usage_error():
    r = CliRunner().invoke(main, ["frobnicate"])
    assert r.exit_code == 2 and "No such command" in r.output


def test_validate_summary_lists_every_objective_and_constraint(tmp_path):
    f = tmp_path / "mo.yaml"
    f.write_text("experiment: {name: mo}\nspace: {builtin: chain}\nstrategy: {name: evolution}\n"
                 "objective:\n  objectives:\n    - {metric: valid_accuracy, mode: max}\n"
                 "    - {metric: params, mode: min}\n  constraints:\n    - {metric: params, max: 1.0e6}\n")
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 0, r.output
    assert "maximize valid_accuracy, minimize params (Pareto), params <= 1e+06" in r.output
