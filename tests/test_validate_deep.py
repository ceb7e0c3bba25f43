"""`nasrun validate` checks what it can before a job starts (issue 17): the function objective
imports, the data set is there and usable, a train objective has an architecture, the trainer's
hyperparameters, the strategy's options, seeds and time limits lie in working ranges. Each bad
spec is one line naming the file and the key path, exit 2, no traceback."""
import copy
import os
import uuid

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from nasrun.cli import main

BASE = {
    "experiment": {"name": "deep", "seed": 0},
    "space": {"builtin": "chain", "options": {"kind": "cnn", "max_layers": 2, "widths": [8, 16]}},
    "strategy": {"name": "random"},
    "objective": {"type": "train", "dataset": {"name": "digits", "valid_fraction": 0.25}},
    "budget": {"max_trials": 2},
}
DELETE = object()


def with_(base, changes):
    d = copy.deepcopy(base)
    for path, value in changes.items():
        keys = path.split(".")
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is DELETE:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return d


def module(tmp, body):
    """A fresh module (a unique name: imports are cached) in tmp; its function target."""
    name = "deep_" + uuid.uuid4().hex[:10]
    (tmp / f"{name}.py").write_text(body)
    return name


def function_spec(tmp, target):
    return {"objective": {"type": "function", "function": target, "python_path": [str(tmp)]},
            "space": {"params": {"x": {"type": "float", "low": 0.0, "high": 1.0}}}}


def fn(tmp, body, attr="f"):
    return function_spec(tmp, f"{module(tmp, body)}:{attr}")


def npz(tmp, name="data.npz", **arrays):
    p = tmp / name
    np.savez(p, **arrays)
    return {"objective.dataset": {"name": "file", "path": str(p)}}


def images(n=20):
    return np.zeros((n, 1, 8, 8), np.float32)


def labels(n=20):
    return np.arange(n) % 3


def h5(tmp, **arrays):
    p = tmp / "data.h5"
    with h5py.File(p, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    return {"objective.dataset": {"name": "file", "path": str(p)}}


def cifar(tmp, sizes=(), python=False):
    d = tmp / "cifar"
    d.mkdir()
    for i, size in enumerate(sizes):
        (d / f"data_batch_{i + 1}.bin").write_bytes(bytes(size))
    if python:
        (d / "cifar-10-batches-py").mkdir()
        (d / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"pickle")
    return {"objective.dataset": {"name": "cifar10", "path": str(d)}}


def raw(tmp, name, content):
    p = tmp / name
    p.write_bytes(content)
    return {"objective.dataset": {"name": "file", "path": str(p)}}


def output_dir(tmp, file_name, *below):
    """experiment.output_dir at (or below) a plain file."""
    (tmp / file_name).write_text("x")
    return {"experiment.output_dir": str(tmp.joinpath(file_name, *below))}


def bohb(**opts):
    return {"strategy": {"name": "bohb", "options": opts}}


def strat(name, **opts):
    return {"strategy": {"name": name, "options": opts}}


# (id, changes: dict or tmp -> dict, key path in the message, words in the message)
BAD = [
    ("function-module-missing", lambda t: function_spec(t, "no_such_module_17:f"),
     "objective.function", "No module named"),
    ("function-raises-on-import", lambda t: fn(t, "raise RuntimeError('boom on import')\n"),
     "objective.function", "boom on import"),
    ("function-syntax-error", lambda t: fn(t, "def f(config, ctx:\n    return 1\n"),
     "objective.function", "syntax error"),
    ("function-exits-on-import", lambda t: fn(t, "raise SystemExit(3)\n"),
     "objective.function", "cannot import"),
    ("function-not-callable", lambda t: fn(t, "f = 3\n"), "objective.function", "not a function"),
    ("function-name-missing", lambda t: fn(t, "def g(c, x):\n    return {}\n"),
     "objective.function", "has no attribute"),
    ("train-without-architecture",
     {"space": {"params": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1}}}},
     "space.builtin", "architecture"),
    ("seed-2^63", {"experiment.seed": 2 ** 63}, "experiment.seed", "4294967295"),
    ("seed-2^32", {"experiment.seed": 2 ** 32}, "experiment.seed", "4294967295"),
    ("seed-negative", {"experiment.seed": -1}, "experiment.seed", ">= 0"),
    ("bohb-random-fraction-above-1", bohb(random_fraction=1.5), "strategy.options.random_fraction",
     "[0, 1]"),
    ("bohb-random-fraction-negative", bohb(random_fraction=-0.1),
     "strategy.options.random_fraction", "[0, 1]"),
    ("bohb-top-n-percent-0", bohb(top_n_percent=0.0), "strategy.options.top_n_percent", "(0, 100]"),
    ("bohb-num-samples-0", bohb(num_samples=0), "strategy.options.num_samples", "[1, 100000]"),
    ("bohb-min-bandwidth-0", bohb(min_bandwidth=0.0), "strategy.options.min_bandwidth", "(0"),
    ("hyperband-eta-huge", strat("hyperband", eta=1e9), "strategy.options.eta", "(1, 1000]"),
    ("hyperband-brackets-huge", strat("hyperband", max_brackets=10 ** 7),
     "strategy.options.max_brackets", "[0, 1e+06]"),
    ("evolution-population-huge", strat("evolution", population_size=10 ** 9),
     "strategy.options.population_size", "[1, 1e+06]"),
    ("rl-bins-1", strat("rl", bins=1), "strategy.options.bins", "[2, 1024]"),
    ("rl-lr-0", strat("rl", lr=0.0), "strategy.options.lr", "(0, 10]"),
    ("rl-temperature-0", strat("rl", temperature=0.0), "strategy.options.temperature",
     "(0, 1000]"),
    ("rl-baseline-decay-2", strat("rl", baseline_decay=2.0), "strategy.options.baseline_decay",
     "[0, 1]"),
    ("rl-hidden-size-huge", strat("rl", hidden_size=10 ** 6), "strategy.options.hidden_size",
     "[1, 4096]"),
    ("trial-time-limit-absurd", {"resources": {"trial_time_limit": 1e12}},
     "resources.trial_time_limit", "a year"),
    ("orphan-timeout-absurd", {"resources": {"orphan_timeout": 1e10}},
     "resources.orphan_timeout", "a year"),
    ("checkpoint-every-seconds-absurd", {"checkpoint": {"every_seconds": 1e10}},
     "checkpoint.every_seconds", "a year"),
    ("optimizer-param-bogus", {"space.params": {"optimizer": ["sgd", "bogus"]}},
     "space.params.optimizer", "'bogus'"),
    ("lr-param-not-positive", {"space.params": {"lr": {"type": "float", "low": -1.0, "high": 1.0}}},
     "space.params.lr", "(0, 10]"),
    ("batch-size-param-0", {"space.params": {"batch_size": [0, 32]}},
     "space.params.batch_size", "an integer"),
    ("momentum-param-above-1",
     {"space.params": {"momentum": {"type": "float", "low": 0.5, "high": 2.0}}},
     "space.params.momentum", "[0, 1]"),
    ("stem-width-0", {"objective.options": {"stem_width": 0}}, "objective.options.stem_width",
     "[1, 4096]"),
    ("nb201-cells-huge", {"space": {"builtin": "nb201"}, "objective.options": {"nb201_cells": 10 ** 6}},
     "objective.options.nb201_cells", "[1, 64]"),
    ("widths-not-positive", {"space.options.widths": [0, 8]}, "space.options.widths", "positive"),
    ("ops-bogus", {"space.options.ops": ["conv3x3", "bogus"]}, "space.options.ops", "bogus"),
    ("digits-limit-too-small-to-split",
     {"objective.dataset": {"name": "digits", "limit": 10, "valid_fraction": 0.01}},
     "objective.dataset.limit", "cannot be split"),
    ("file-missing", {"objective.dataset": {"name": "file", "path": "/nonexistent/d.npz"}},
     "objective.dataset.path", "not found"),
    ("npz-without-y", lambda t: npz(t, x=images()), "objective.dataset.path", "no array 'y'"),
    ("npz-sample-counts-differ", lambda t: npz(t, x=images(20), y=labels(19)),
     "objective.dataset.path", "20 samples"),
    ("npz-float-labels", lambda t: npz(t, x=images(), y=labels().astype(float)),
     "objective.dataset.path", "class labels"),
    ("npz-negative-labels", lambda t: npz(t, x=images(), y=labels() - 1),
     "objective.dataset.path", "class labels"),
    ("npz-2d-labels", lambda t: npz(t, x=images(), y=labels().reshape(20, 1)),
     "objective.dataset.path", "class labels"),
    ("npz-5d-inputs", lambda t: npz(t, x=np.zeros((20, 1, 1, 8, 8), np.float32), y=labels()),
     "objective.dataset.path", "must have shape"),
    ("npz-string-inputs", lambda t: npz(t, x=np.array(["a"] * 20), y=labels()),
     "objective.dataset.path", "numeric"),
    ("npz-one-sample", lambda t: npz(t, x=images(1), y=labels(1)),
     "objective.dataset", "cannot be split"),
    ("npz-garbage", lambda t: raw(t, "data.npz", b"not a zip file"), "objective.dataset.path",
     "cannot read"),
    ("file-wrong-extension", lambda t: raw(t, "data.csv", b"1,2\n"), "objective.dataset.path",
     ".npz or .h5"),
    ("h5-without-x", lambda t: h5(t, y=labels()), "objective.dataset.path", "no dataset 'x'"),
    ("cnn-on-vectors", lambda t: npz(t, x=np.zeros((20, 5), np.float32), y=labels()),
     "objective.dataset", "needs images"),
    ("nb201-on-vectors",
     lambda t: {**npz(t, x=np.zeros((20, 5), np.float32), y=labels()), "space": {"builtin": "nb201"}},
     "objective.dataset", "needs images"),
    ("cifar-empty-dir", lambda t: cifar(t), "objective.dataset.path", "no CIFAR-10 binary"),
    ("cifar-wrong-size", lambda t: cifar(t, sizes=(3073 * 2 + 5,)), "objective.dataset.path",
     "not a CIFAR-10 binary batch"),
    ("cifar-python-version", lambda t: cifar(t, python=True), "objective.dataset.path",
     "python version"),
    ("output-dir-is-a-file", lambda t: output_dir(t, "afile"), "experiment.output_dir",
     "afile' is not a directory"),
    ("output-dir-inside-a-file", lambda t: output_dir(t, "bfile", "run"), "experiment.output_dir",
     "which is not a directory"),
    ("output-dir-name-too-long", lambda t: {"experiment.output_dir": str(t / ("d" * 300))},
     "experiment.output_dir", "too long"),
    ("output-dir-path-too-long", lambda t: {"experiment.output_dir": str(t / "/".join(["d" * 200] * 25))},
     "experiment.output_dir", "too long"),
    ("threads-per-rank-1e6", {"resources.threads_per_rank": 10 ** 6}, "resources.threads_per_rank",
     "4096"),
]


def validate(tmp_path, d):
    f = tmp_path / "spec.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    return CliRunner().invoke(main, ["validate", str(f)]), str(f)


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_spec_is_one_clear_line_and_exit_2(tmp_path, case):
    _, changes, key, words = case
    if callable(changes):
        changes = changes(tmp_path)
    r, f = validate(tmp_path, with_(BASE, changes))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    out = r.output.strip()
    assert len(out.splitlines()) == 1, out
    assert out.startswith(f"nasrun: error: {f}"), out
    assert f": {key}: " in out, out
    assert words in out, out
    assert len(out) < 700, out


GOOD = [
    ("digits", {}),
    ("npz-images", lambda t: npz(t, x=images(), y=labels())),
    ("npz-hw-images", lambda t: npz(t, x=np.zeros((20, 8, 8), np.float32), y=labels())),
    ("npz-vectors-mlp", lambda t: {**npz(t, x=np.zeros((20, 5), np.float32), y=labels()),
                                   "space.options": {"kind": "mlp", "max_layers": 2,
                                                     "widths": [8, 16]}}),
    ("h5-images", lambda t: h5(t, x=images(), y=labels())),
    ("cifar-binary", lambda t: cifar(t, sizes=(3073 * 4, 3073 * 2))),
    ("function", lambda t: fn(t, "def f(config, ctx):\n    return {'valid_accuracy': 1.0}\n")),
    ("bohb-edges", bohb(random_fraction=1.0, top_n_percent=100.0)),
    ("searched-trainer-params",
     {"space.params": {"optimizer": ["sgd", "adam"], "batch_size": [16, 32],
                       "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}}),
    ("seed-max", {"experiment.seed": 2 ** 32 - 1}),
    ("day-long-trials", {"resources": {"trial_time_limit": 86400}}),
]


@pytest.mark.parametrize("case", GOOD, ids=[c[0] for c in GOOD])
def test_good_spec_validates(tmp_path, case):
    changes = case[1](tmp_path) if callable(case[1]) else case[1]
    r, f = validate(tmp_path, with_(BASE, changes))
    assert r.exit_code == 0, r.output
    assert f"{f}: valid" in r.output


def test_validate_reads_only_the_headers_of_the_inputs(tmp_path, monkeypatch):
    """The inputs array is never loaded (it may be many GB): only its header is read."""
    import nasrun.train.datasets as ds
    changes = npz(tmp_path, x=images(), y=labels())
    monkeypatch.setattr(ds, "load_file_arrays", lambda *a, **k: pytest.fail("loaded the arrays"))
    r, _ = validate(tmp_path, with_(BASE, changes))
    assert r.exit_code == 0, r.output


def test_run_refuses_an_unimportable_function_before_starting(tmp_path):
    d = with_(BASE, {**function_spec(tmp_path, "no_such_module_17b:f"),
                     "experiment.output_dir": str(tmp_path / "exp")})
    f = tmp_path / "spec.yaml"
    f.write_text(yaml.safe_dump(d))
    r = CliRunner().invoke(main, ["run", str(f)])
    assert r.exit_code == 2, r.output
    assert f"{f}: objective.function: " in r.output and "No module named" in r.output
    assert not os.path.exists(tmp_path / "exp")  # nothing started


def test_resume_imports_the_objective_only_after_it_is_confirmed(tmp_path):
    """resume preflights the stored spec: an objective that no longer imports is exit 2 with the
    stored spec and key path named, and its module runs only once the user confirmed it."""
    import subprocess
    import sys

    from conftest import mpi_env
    name = module(tmp_path, "def f(config, ctx):\n    return {'valid_accuracy': config['x']}\n")
    d = with_(BASE, {**function_spec(tmp_path, f"{name}:f"), "experiment.output_dir":
                     str(tmp_path / "exp"), "budget.max_trials": 2})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(d))

    def nasrun(*args):
        return subprocess.run([sys.executable, "-m", "nasrun", *args], cwd=tmp_path, env=mpi_env(),
                              capture_output=True, text=True, timeout=300)

    r = nasrun("run", str(tmp_path / "spec.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
    mark = tmp_path / "module-ran"
    (tmp_path / f"{name}.py").write_text(f"open({str(mark)!r}, 'w').close()\n"
                                         "raise RuntimeError('gone since the run')\n")
    r = nasrun("resume", str(tmp_path / "exp"))
    assert r.returncode == 2 and "Confirm with" in r.stderr, r.stderr
    assert not mark.exists()
    r = nasrun("resume", str(tmp_path / "exp"), "--objective", f"{name}:f")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == (
        f"nasrun: error: {tmp_path / 'exp'} (stored spec): objective.function: cannot import "
        f"{name}:f: RuntimeError: gone since the run (expected module:function, importable with "
        "objective.python_path, naming a callable)")
    assert mark.exists()
