"""``nasrun export``: a trained trial as a standalone PyTorch module, checked in a process that
cannot import nasrun; the runtime's keep_best weights; clear errors on bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import mpi_env, mpirun

from nasrun.cli import main
from nasrun.export import export_trial, load_experiment
from nasrun.runtime.api import run_experiment
from nasrun.spec import parse_spec
from nasrun.store import DONE, FAILED, open_store
from nasrun.store.sample import write_experiment
from nasrun.train.datasets import load_dataset
from nasrun.train.models import build_model


class FakeComm:
    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1


def stored(run):
    """(trials by id, kept model states by trial id) as ``nasrun export`` reads them."""
    exp, _, _ = load_experiment(str(run))
    kept = {tid: exp.models.get(tid) for tid in sorted(open_store(str(run)).load().state.refs)}
    return {r.trial_id: r for r in exp.trials}, kept


def digits_spec(out, trials=4, epochs=2, keep_best=2, strategy="random", extra=""):
    return f"""
experiment: {{name: ex, seed: 0, output_dir: {out}}}
space:
  builtin: chain
  options: {{kind: cnn, max_layers: 2, widths: [8, 16]}}
strategy: {{name: {strategy}}}
objective:
  type: train
  dataset: {{name: digits, valid_fraction: 0.25}}
  epochs: {epochs}
  batch_size: 64
  optimizer: {{name: adam, lr: 0.01}}
{extra}
budget: {{max_trials: {trials}}}
checkpoint: {{keep_best: {keep_best}}}
resources: {{max_consecutive_failures: 5}}
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A 4-trial digits run in this process (one rank), trial 1 injected to fail."""
    d = tmp_path_factory.mktemp("exp")
    text = digits_spec(str(d / "run"))
    old = os.environ.get("NASRUN_INJECT_FAILURE")
    os.environ["NASRUN_INJECT_FAILURE"] = "trial=1,kind=raise"
    torch.set_num_threads(1)
    try:
        os.makedirs(d / "run")
        run_experiment(parse_spec(text), text, open_store(str(d / "run")), comm=FakeComm(), progress=False)
    finally:
        if old is None:
            del os.environ["NASRUN_INJECT_FAILURE"]
        else:
            os.environ["NASRUN_INJECT_FAILURE"] = old
    return d / "run", text


def test_keep_best_keeps_final_weights_of_the_best_finished_trials(experiment):
    run, _ = experiment
    st, models = stored(run)
    assert st[1].status == FAILED and all(st[i].status == DONE for i in (0, 2, 3))
    acc = {i: st[i].outcome.metrics["valid_accuracy"] for i in (0, 2, 3)}
    best2 = sorted(acc, key=lambda i: (-acc[i], i))[:2]
    assert sorted(models) == sorted(best2)  # keep_best: 2, the others evicted
    for tid in best2:
        assert models[tid].epoch == 2
        assert models[tid].meta["input_shape"] == [1, 8, 8]
    # the evicted states' files are gone too: the weights directory holds the kept ones only
    names = sorted(n for n in os.listdir(run / "experiment.weights") if n.endswith(".h5"))
    refs = open_store(str(run)).load().state.refs
    assert names == sorted(r.file for tid in best2 for r in refs[tid])


def test_export_best_matches_nasrun_network_and_logged_accuracy(experiment, tmp_path):
    run, text = experiment
    spec = parse_spec(text)
    res = export_trial(str(run), str(tmp_path / "out"))
    trials, models = stored(run)
    rec = trials[res.trial_id]
    assert res.weights
    assert res.value == max(r.outcome.value("valid_accuracy") or 0 for r in trials.values())
    assert sorted(os.listdir(tmp_path / "out")) == ["README.md", "model.py", "recipe.json", "train.py",
                                                   "weights.pt", "weights.safetensors"]
    # the exported module (loaded from its file) and nasrun's own network: same outputs, same weights
    import importlib.util
    sp = importlib.util.spec_from_file_location("exported_model_t", tmp_path / "out" / "model.py")
    mod = importlib.util.module_from_spec(sp)
    sp.loader.exec_module(mod)
    exported = mod.load()
    data = load_dataset(spec.objective.dataset, spec.experiment.seed)
    ours = build_model("chain", spec.space.options, rec.suggestion.config, data.input_shape, 10)
    tensors = models[res.trial_id].tensors
    ours.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in tensors.items()
                          if k.startswith("model/")})
    ours.eval()
    with torch.no_grad():
        a, b = exported(data.x_valid), ours(data.x_valid)
    assert torch.equal(a, b)
    acc = (a.argmax(1) == data.y_valid).sum().item() / len(data.y_valid)
    assert acc == pytest.approx(rec.outcome.metrics["valid_accuracy"], abs=1e-9)
    from safetensors.torch import load_file
    st = load_file(str(tmp_path / "out" / "weights.safetensors"))
    assert st.keys() == exported.state_dict().keys()
    assert all(torch.equal(st[k], v) and st[k].shape == v.shape for k, v in exported.state_dict().items())
    recipe = json.loads((tmp_path / "out" / "recipe.json").read_text())
    assert recipe["trial_id"] == res.trial_id and recipe["config"] == rec.suggestion.config
    assert recipe["training"] == {**recipe["training"], "epochs": 2, "batch_size": 64, "optimizer": "adam",
                                  "lr": 0.01}
    assert recipe["dataset"]["valid_fraction"] == 0.25 and recipe["weights"]["available"]
    assert "train.py --data digits.npz" in recipe["retrain_command"]


def test_export_without_weights_and_require_weights(experiment, tmp_path):
    run, _ = experiment
    trials, models = stored(run)
    evicted = [t for t, r in trials.items() if r.status == DONE and t not in models]
    assert evicted
    r = CliRunner().invoke(main, ["export", str(run), "--trial", str(evicted[0]),
                                                  "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert "weights of trial" in r.stderr and "not available" in r.stderr and "keep_best=2" in r.stderr
    assert sorted(os.listdir(tmp_path / "a")) == ["README.md", "model.py", "recipe.json", "train.py"]
    assert "no weights" in (tmp_path / "a" / "README.md").read_text()
    r = CliRunner().invoke(main, ["export", str(run), "--trial", str(evicted[0]),
                                                  "--require-weights", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "not available" in r.stderr and not os.path.exists(tmp_path / "b")


def _cli(args):
    r = CliRunner().invoke(main, ["export"] + args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


def test_bad_input_clear_messages_exit_2(experiment, tmp_path):
    run, text = experiment
    out = str(tmp_path / "o")
    cases = [
        ([str(tmp_path / "missing"), "--out", out], "no such file or directory"),
        ([str(tmp_path), "--out", out], "not a nasrun experiment"),
        ([str(run / "../../"), "--out", out], "not a nasrun experiment"),
        ([str(run), "--trial", "99", "--out", out], "no trial 99 in this experiment (trials 0..3)"),
        ([str(run), "--trial", "1", "--out", out],
         "trial 1 failed (RuntimeError: injected failure in trial 1)"),
        ([str(run), "--trial", "1", "--best", "--out", out], "not both"),
    ]
    (tmp_path / "notes.txt").write_text("hello")
    cases.append(([str(tmp_path / "notes.txt"), "--out", out], "not an HDF5 file"))
    for args, msg in cases:
        r = _cli(args)
        assert r.exit_code == 2, (args, r.output, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr + r.output
    # an experiment whose only trial failed; a non-empty output directory
    trials, _ = stored(run)
    failed = [r for r in trials.values() if r.status == FAILED]
    write_experiment(str(tmp_path / "failed"), failed, text)
    r = _cli([str(tmp_path / "failed"), "--out", out])
    assert r.exit_code == 2 and "no finished trial to export (1 trials, 1 failed)" in r.stderr
    os.makedirs(out, exist_ok=True)
    (tmp_path / "o" / "x").write_text("")
    r = _cli([str(run), "--out", out])
    assert r.exit_code == 2 and "not empty" in r.stderr


def test_table_objective_exports_architecture_only(tmp_path):
    from nasrun.store import TrialRecord
    from nasrun.trial import Outcome, Suggestion
    text = """
experiment: {name: tab}
space: {builtin: nb201}
objective: {type: table}
"""
    cfg = parse_spec(text).make_space().sample(np.random.default_rng(0))
    done = TrialRecord(Suggestion(0, cfg), DONE, Outcome(0, "done", {"valid_accuracy": 91.0}))
    write_experiment(str(tmp_path / "t"), [done], text)
    res = export_trial(str(tmp_path / "t"), str(tmp_path / "o"))
    assert not res.weights and "no network was trained" in res.warnings[0]
    rec = json.loads((tmp_path / "o" / "recipe.json").read_text())
    assert rec["input_shape"] == [3, 32, 32]
    assert rec["macro_options"] == {"nb201_cells": 5, "nb201_channels": 16}


# -- a real MPI run, then the export imported where nasrun cannot be --------------------------------
ISOLATED = r"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "nasrun" or name.startswith("nasrun."):
            raise ImportError("nasrun is blocked in this process")
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
import model
assert "nasrun" not in sys.modules and not any(m.startswith("nasrun.") for m in sys.modules)
try:
    import nasrun  # noqa: F401
    raise SystemExit("nasrun was importable")
except ImportError:
    pass
net = model.load()
d = np.load(sys.argv[2])
with torch.no_grad():
    out = net(torch.from_numpy(d["x"]))
print("ACC", repr((out.argmax(1) == torch.from_numpy(d["y"])).double().mean().item()))
sd = torch.load(sys.argv[1] + "/weights.pt", weights_only=True)
print("TENSORS", len(sd))
"""


@pytest.mark.mpi
def test_mpi_run_then_export_best_reproduces_accuracy_without_nasrun(tmp_path):
    text = digits_spec(str(tmp_path / "run"), trials=4, epochs=2, keep_best=1, strategy="evolution",
                       extra="  objectives: [{metric: valid_accuracy, mode: max},"
                             " {metric: params, mode: min}]\n"
                             "  constraints: [{metric: params, max: 1.0e6}]")
    (tmp_path / "spec.yaml").write_text(text)
    p = mpirun(3, ["-m", "nasrun", "run", str(tmp_path / "spec.yaml")], timeout=150, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr + p.stdout
    assert "finished (max_trials (4) reached)" in p.stdout
    env = mpi_env()
    e = subprocess.run([sys.executable, "-m", "nasrun", "export", str(tmp_path / "run"), "--best", "--out",
                        str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120)
    assert e.returncode == 0, e.stderr
    trials, models = stored(tmp_path / "run")
    done = [r for r in trials.values() if r.status == DONE]
    best = max(done, key=lambda r: (r.outcome.metrics["valid_accuracy"], -r.trial_id))
    assert f"exported trial {best.trial_id} " in e.stdout and list(models) == [best.trial_id]
    spec = parse_spec(text)
    data = load_dataset(spec.objective.dataset, spec.experiment.seed)
    np.savez(tmp_path / "valid.npz", x=data.x_valid.numpy(), y=data.y_valid.numpy())
    site = [p for p in sys.path if p.endswith("site-packages")]
    iso_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(site),
               "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", ISOLATED, str(tmp_path / "out"), str(tmp_path / "valid.npz")],
                       env=iso_env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    acc = float(r.stdout.split("ACC ")[1].split()[0])
    assert acc == pytest.approx(best.outcome.metrics["valid_accuracy"], abs=1e-9)
    assert acc > 0.3


def test_models_module_is_standalone():
    """model.py is nasrun/train/models.py verbatim: it may import only torch and the stdlib."""
    import ast
    import inspect

    from nasrun.space.builtin import NB201_EDGES
    from nasrun.train import models
    tree = ast.parse(inspect.getsource(models))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in models.py"
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "typing", "torch", "os"}, roots
    assert models.NB201_EDGES == NB201_EDGES


def test_exported_train_py_retrains(experiment, tmp_path):
    from nasrun.train.datasets import load_digits_arrays
    run, _ = experiment
    export_trial(str(run), str(tmp_path / "out"))
    x, y = load_digits_arrays()
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    r = subprocess.run([sys.executable, str(tmp_path / "out" / "train.py"),
                        "--data", str(tmp_path / "digits.npz"), "--epochs", "1",
                        "--out", str(tmp_path / "re.pt")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1: valid_accuracy" in r.stdout
    assert set(torch.load(tmp_path / "re.pt", weights_only=True)) == set(
        torch.load(tmp_path / "out" / "weights.pt", weights_only=True))
