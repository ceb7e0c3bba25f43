"""The YAML spec: every malformed spec is refused with file, line, key path, exit 2, no traceback;
valid specs round-trip."""
import copy
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasrun.cli import main
from nasrun.errors import SpecError
from nasrun.spec import dump_spec, load_spec, parse_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASE = {
    "experiment": {"name": "t", "seed": 3},
    "space": {"builtin": "chain", "options": {"kind": "cnn", "max_layers": 2},
              "params": {"optimizer": ["sgd", "adam"],
                         "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                         "momentum": {"type": "float", "low": 0.5, "high": 0.99,
                                      "when": {"optimizer": "sgd"}}}},
    "strategy": {"name": "random"},
    "objective": {"type": "train", "epochs": 3, "dataset": {"name": "digits"}, "optimizer": {"lr": 0.01}},
    "budget": {"max_trials": 10},
    "resources": {"ranks_per_trial": 2},
    "checkpoint": {"every_epochs": 1},
    "slurm": {"nodes": 1},
}


def check_cli_rejects(tmp_path, text, expect_path):
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(f)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(f) in result.output
    if expect_path:
        assert expect_path in result.output, result.output
    return result.output


def test_base_spec_is_valid():
    spec = parse_spec(yaml.safe_dump(BASE), "base.yaml")
    assert spec.resources.ranks_per_trial == 2
    space = spec.make_space()
    assert len(space) == 1 + 4 + 1 + 3  # num_layers, 2x(op, width), one skip, 3 own parameters
    names = list(space.params)
    assert names.index("momentum") > names.index("optimizer")  # conditions order the parameters


# -- malformed specs -------------------------------------------------------------------------
def _paths(d, prefix=()):
    """Every key path to a leaf or mapping in a nested dict."""
    for k, v in d.items():
        yield prefix + (k,)
        if isinstance(v, dict) and k not in ("params", "options"):
            yield from _paths(v, prefix + (k,))


ALL_PATHS = sorted(set(_paths(BASE)))
SECTION_PATHS = [p for p in ALL_PATHS if len(p) == 1]


def _get(d, path):
    for k in path:
        d = d[k]
    return d


def _set(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


WRONG_VALUES = [[], {}, "text", 1.5, -3, True, None, [1, 2], {"a": 1}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_specs_are_rejected_with_a_key_path(tmp_path, data):
    spec = copy.deepcopy(BASE)
    kind = data.draw(st.sampled_from(["unknown_key", "wrong_type", "out_of_range", "empty_choices",
                                      "bad_log", "bad_condition", "bad_param_type", "missing_required"]))
    if kind == "unknown_key":
        parents = [p for p in ALL_PATHS if isinstance(_get(BASE, p), dict)
                   and p[-1] not in ("params", "options")] + [()]
        parent = data.draw(st.sampled_from(parents))
        key = data.draw(st.sampled_from(["nmae", "sed", "colour", "epoch", "max_trial", "zzz"]))
        target = _get(spec, parent) if parent else spec
        if key in target:
            return
        target[key] = 1
        expect = ".".join(parent + (key,))
    elif kind == "wrong_type":
        leaves = [p for p in ALL_PATHS if not isinstance(_get(BASE, p), (dict, list))
                  and p[-1] not in ("name",) or p == ("experiment", "name")]
        path = data.draw(st.sampled_from(leaves))
        value = data.draw(st.sampled_from(WRONG_VALUES))
        old = _get(BASE, path)
        if type(value) is type(old) or (isinstance(old, float) and type(value) is int):
            return
        if path[-1] in ("kind",) and value == "text":
            pass
        _set(spec, path, value)
        expect = ".".join(path)
        if value is None:  # null is allowed for optional keys; then a cross-key rule may object
            try:
                parse_spec(yaml.safe_dump(spec), "m.yaml")
                return
            except SpecError:
                expect = path[0]
    elif kind == "out_of_range":
        path, value = data.draw(st.sampled_from([
            (("experiment", "seed"), -1), (("budget", "max_trials"), 0), (("objective", "epochs"), 0),
            (("resources", "ranks_per_trial"), 0), (("checkpoint", "every_epochs"), 0),
            (("slurm", "nodes"), 0), (("objective", "optimizer", "lr"), 0.0),
            (("objective", "optimizer", "lr"), -1.0), (("space", "options", "max_layers"), 0)]))
        _set(spec, path, value)
        expect = ".".join(path)
    elif kind == "empty_choices":
        spec["space"]["params"]["optimizer"] = {"type": "categorical", "choices": []}
        expect = "space.params.optimizer.choices"
    elif kind == "bad_log":
        low = data.draw(st.sampled_from([0, -1e-3, -5]))
        spec["space"]["params"]["lr"]["low"] = low
        expect = "space.params.lr.low"
    elif kind == "bad_condition":
        parent = data.draw(st.sampled_from(["optimiser", "nothing", "lr2"]))
        spec["space"]["params"]["momentum"]["when"] = {parent: "sgd"}
        expect = f"space.params.momentum.when.{parent}"
    elif kind == "bad_param_type":
        spec["space"]["params"]["lr"]["type"] = data.draw(st.sampled_from(["floot", "str", 3, None]))
        expect = "space.params.lr.type"
    else:
        section = data.draw(st.sampled_from(["experiment", "space"]))
        del spec[section]
        expect = section
    text = yaml.safe_dump(spec)
    with pytest.raises(SpecError) as err:
        parse_spec(text, "m.yaml")
    msg = str(err.value)
    assert msg.startswith("m.yaml"), msg
    assert expect in msg, (kind, msg)


@pytest.mark.parametrize("text,path,line", [
    ("experiment: {name: t}\nspace: {builtin: nb201}\nexperiment: {name: u}\n", "", 3),
    ("experiment:\n  name: t\n  name: u\nspace: {builtin: nb201}\n", "", 3),
    ("experiment: {name: t}\nspace: [\n", "", None),
    ("experiment: {name: t}\nspace:\n  builtin: nb201\n   bad indent: 1\n", "", None),
    ("experiment: {name: t}\nspace: {builtin: nb201}\nstrategy:\n  name: evolushun\n", "strategy.name", 4),
    ("experiment: {name: t}\nspace: {builtin: nb201}\nbudget:\n  max_trials: 10\n  max_trails: 3\n",
     "budget.max_trails", 5),
    ("- just\n- a list\n", "", None),
    ("", "", None),
    ("experiment: {name: t}\nspace: {builtin: nb201}\nobjective: {type: function}\n",
     "objective.function", 3),
    ("experiment: {name: t}\nspace: {builtin: chain}\n"
     "objective: {dataset: {name: cifar10, path: /nonexistent/c}}\n", "objective.dataset.path", 3),
    ("experiment: {name: 'a b'}\nspace: {builtin: nb201}\n", "experiment.name", 1),
    ("experiment: {name: t}\nspace: {}\n", "space", 2),
    ("experiment: {name: t}\nspace: {builtin: nb201, options: {opz: [none]}}\n", "space.options.opz", 2),
    ("experiment: {name: t}\nspace: {builtin: chain}\nbudget: {max_trials: null}\n", "budget", 3),
    ("experiment: {name: t}\nspace:\n  params:\n    x: {type: int, low: 5, high: 1}\n", "space.params.x", 4),
    ("experiment: {name: t}\nspace:\n  params:\n    x: {type: float, low: 0, high: .inf}\n",
     "space.params.x.high", 4),
    ("experiment: {name: t}\nspace: {builtin: chain}\nobjective: {epochs: 2, min_epochs: 3}\n",
     "objective.min_epochs", 3),
    ("!!python/object/apply:os.system ['echo pwned']\n", "", None),
])
def test_specific_errors(tmp_path, text, path, line):
    out = check_cli_rejects(tmp_path, text, path)
    if line is not None:
        assert f"spec.yaml:{line}:" in out, out
    assert "pwned" not in out or "python/object" in out


def test_missing_and_unreadable_files(tmp_path):
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "file not found" in r.output and "Traceback" not in r.output
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x80garbage")
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "bin.yaml")])
    assert r.exit_code == 2 and "bin.yaml" in r.output and "Traceback" not in r.output


def test_a_real_process_prints_no_traceback(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("experiment: {name: t}\nspace: {builtin: chain}\n"
                 "strategy: {name: random, options: {x: 1}}\n")
    p = subprocess.run([sys.executable, "-m", "nasrun", "validate", str(f)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr + p.stdout
    assert "strategy.options.x" in p.stderr and f"{f}:3:" in p.stderr


# -- valid specs round-trip ------------------------------------------------------------------
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def param_specs(draw):
    kind = draw(st.sampled_from(["categorical", "int", "float"]))
    if kind == "categorical":
        choices = draw(st.lists(st.one_of(st.integers(-5, 5), names, st.booleans()), min_size=1, max_size=4,
                                unique_by=lambda v: (type(v).__name__, v)))
        return {"type": "categorical", "choices": choices}
    log = draw(st.booleans())
    if kind == "int":
        low = draw(st.integers(1 if log else -10, 50))
        return {"type": "int", "low": low, "high": draw(st.integers(low, 100)), "log": log}
    low = draw(st.floats(1e-6 if log else -10, 10, allow_nan=False))
    return {"type": "float", "low": low, "high": draw(st.floats(low, 1e3, allow_nan=False)), "log": log}


@settings(max_examples=80, deadline=None)
@given(params=st.dictionaries(names, param_specs(), min_size=1, max_size=5),
       seed=st.integers(0, 2 ** 31), trials=st.integers(1, 10 ** 6), builtin=st.sampled_from([None, "chain"]),
       ranks=st.integers(1, 16), strategy=st.sampled_from(["random"]))
def test_valid_specs_round_trip(params, seed, trials, builtin, ranks, strategy):
    if builtin == "chain":
        params = ({k: v for k, v in params.items() if not (k == "num_layers" or k.startswith("layer"))}
                  or {"zz": {"type": "int", "low": 1, "high": 2}})
    d = {"experiment": {"name": "rt", "seed": seed}, "space": {"params": params},
         "strategy": {"name": strategy}, "budget": {"max_trials": trials},
         "resources": {"ranks_per_trial": ranks}}
    if builtin:
        d["space"]["builtin"] = builtin
    spec = parse_spec(yaml.safe_dump(d), "rt.yaml")
    again = parse_spec(dump_spec(spec), "rt2.yaml")
    assert again == spec
    assert again.make_space() == spec.make_space()


def test_shipped_configs_validate(tmp_path, monkeypatch):
    # validate reads the data set: a tiny CIFAR-10 binary batch (20 records of label + pixels)
    records = bytes(range(10)) * 2
    (tmp_path / "data_batch_1.bin").write_bytes(b"".join(bytes([y]) + bytes(3072) for y in records))
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    monkeypatch.chdir(ROOT)
    configs = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".yaml"))
    assert len(configs) >= 4
    for name in configs:
        r = CliRunner().invoke(main, ["validate", os.path.join("configs", name)])
        assert r.exit_code == 0, r.output
        assert "valid" in r.output


def test_init_writes_a_valid_spec(tmp_path):
    f = tmp_path / "new.yaml"
    r = CliRunner().invoke(main, ["init", str(f)])
    assert r.exit_code == 0
    spec = load_spec(str(f))
    assert spec.experiment.name == "my-search"
    r = CliRunner().invoke(main, ["init", str(f)])
    assert r.exit_code == 2 and "exists" in r.output
