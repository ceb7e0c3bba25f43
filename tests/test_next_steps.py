"""The end of a run says where the experiment is and what to run next (ended, failed, or
checkpointed on a signal); status/report/export/resume given a path without an experiment list
the experiments under ./runs/. Runs are short single-process `nasrun run` subprocesses."""
import os
import re
import subprocess
import sys

import pytest

from nasrun.commands.where import next_steps

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def spec(trials=3, options="{}"):
    return f"""
experiment: {{name: f, seed: 3}}
space: {{builtin: chain, options: {{kind: mlp, max_layers: 3}}}}
strategy: {{name: random}}
objective: {{type: function, function: "objectives_for_tests:score", python_path: ["{TESTS}"],
             options: {options}}}
budget: {{max_trials: {trials}}}
resources: {{max_consecutive_failures: 3}}
"""


def nasrun(cwd, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, NASRUN_PROGRESS="0", OMP_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return subprocess.run([sys.executable, "-m", "nasrun", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def run_spec(tmp_path, text):
    (tmp_path / "spec.yaml").write_text(text)
    return nasrun(tmp_path, "run", "spec.yaml")


STATUS = "  nasrun status runs/f  # progress, best trials, failures"
REPORT = "  nasrun report runs/f  # leaderboard, trials.csv/json, plots"


def test_a_run_to_its_end_prints_the_directory_and_commands_that_work(tmp_path):
    p = run_spec(tmp_path, spec())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-5].startswith("finished (max_trials (3) reached): 3 trials, 0 failed")
    # a function objective has no network to export
    assert lines[-4:] == ["experiment: runs/f", "next:", STATUS, REPORT]
    for line in lines[-2:]:  # the commands as printed work
        cmd = line.split("#")[0].split()
        assert cmd[:1] == ["nasrun"]
        q = nasrun(tmp_path, *cmd[1:])
        assert q.returncode == 0, (cmd, q.stderr)


def test_a_failed_run_prints_them_after_the_error(tmp_path):
    p = run_spec(tmp_path, spec(6, "{fail_trials: [0, 1, 2]}"))
    assert p.returncode == 1, p.stderr
    err = p.stderr.splitlines()
    at = err.index("experiment: runs/f")
    assert "3 consecutive trials failed" in "\n".join(err[:at])
    assert err[at:] == ["experiment: runs/f", "next:", STATUS, REPORT]
    assert nasrun(tmp_path, "status", "runs/f").returncode == 0


def test_a_signalled_run_says_resume_and_resuming_finishes_it(tmp_path):
    p = run_spec(tmp_path, spec(5, "{signal_trials: [1]}"))
    assert p.returncode == 75, p.stderr
    err = p.stderr.splitlines()
    at = err.index("experiment: runs/f")
    assert err[at - 1].startswith("nasrun: checkpointed after a signal")
    assert err[at:] == ["experiment: runs/f", "next:",
                        "  nasrun resume runs/f  # continue the search",
                        STATUS, REPORT]
    q = nasrun(tmp_path, "resume", "runs/f", "--objective", "objectives_for_tests:score")
    assert q.returncode == 0, q.stderr
    assert q.stdout.splitlines()[-4:] == ["experiment: runs/f", "next:", STATUS, REPORT]


def test_export_is_suggested_for_trained_networks():
    pad = " " * 34  # the commands in one column
    assert next_steps("runs/my run", "done").splitlines() == [
        "experiment: runs/my run", "next:",
        f"  nasrun status 'runs/my run'{pad}  # progress, best trials, failures",
        f"  nasrun report 'runs/my run'{pad}  # leaderboard, trials.csv/json, plots",
        "  nasrun export 'runs/my run' --best --out 'runs/my run/export'  "
        "# the best network as a PyTorch module"]


LISTED = re.compile(r"^  f +3  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  runs/f$")


def test_a_path_without_an_experiment_lists_those_under_runs(tmp_path):
    none = nasrun(tmp_path, "status", "runs/default")
    assert none.returncode == 2
    assert none.stderr.splitlines()[-1] == (f"no experiment under runs/ (in {tmp_path}); start one "
                                            "with: nasrun run SPEC")
    assert run_spec(tmp_path, spec()).returncode == 0
    (tmp_path / "runs" / "empty").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("not an experiment")
    for args in (["status", "runs/default"], ["status", "runs/empty"], ["report", "runs"],
                 ["export", "runs/nope", "--out", "x"], ["resume", "runs/empty"]):
        p = nasrun(tmp_path, *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        err = p.stderr.splitlines()
        assert err[0].startswith(f"nasrun: error: {args[1]}: ") and "Traceback" not in p.stderr, err
        assert err[1:] == [f"experiments under runs/ (in {tmp_path}):",
                           "  name  trials  last save            directory", err[-1]], err
        assert LISTED.match(err[-1]), err[-1]
    # a path that holds an experiment: its own error, no list
    p = nasrun(tmp_path, "report", "runs/f", "--top", "0")
    assert p.returncode == 2 and p.stderr == "nasrun: error: --top must be at least 1, got 0\n"


@pytest.mark.parametrize("outcome", ["done", "failed", "resumable"])
def test_next_steps_names_the_directory_quoted(outcome):
    text = next_steps("a b", outcome, export=False)
    assert text.splitlines()[0] == "experiment: a b" and "nasrun status 'a b'" in text
    assert ("nasrun resume 'a b'" in text) == (outcome == "resumable")
