"""Bad or hostile spec input (the audit's cases): a clear message naming the file, the line and the
key path, exit 2, no traceback, and validation that stays quick and small."""
import os
import time

import pytest
from click.testing import CliRunner

from nasrun.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW = 10.0  # CPU seconds (not wall: a stalled machine once took 141 s of wall time for 0.3 s of
# work): generous, so that a loaded machine does not fail a test of a hang

HEAD = "experiment: {name: t}\n"
FUNC = "objective: {type: function, function: 'tests.objectives_for_tests:score'}\n"


def validate(tmp_path, text, binary=False):
    f = tmp_path / "spec.yaml"
    if binary:
        f.write_bytes(text)
    else:
        f.write_text(text, encoding="utf-8")
    start = time.process_time()
    result = CliRunner().invoke(main, ["validate", str(f)])
    return result, time.process_time() - start, str(f)


def rejects(tmp_path, text, path, binary=False):
    """validate fails with exit 2, no traceback, the file and ``path`` in a short message."""
    r, took, f = validate(tmp_path, text, binary)
    out = r.output
    assert r.exit_code == 2, out[:2000]
    assert "Traceback" not in out, out[:2000]
    assert isinstance(r.exception, SystemExit), r.exception  # exited on purpose, did not crash
    assert f in out, out[:2000]
    assert path in out, out[:2000]
    assert len(out) < 2000, out[:2000]
    assert took < SLOW, took
    return out


# 1. a NUL byte (or another control character YAML refuses) in the file
@pytest.mark.parametrize("char", [b"\x00", b"\x07", b"\x1b"])
def test_disallowed_character_in_the_file(tmp_path, char):
    text = HEAD.encode() + b"space: {builtin: nb201}\n# a comment " + char + b"\n"
    out = rejects(tmp_path, text, "spec.yaml:3:", binary=True)
    assert f"#x{char[0]:04x}" in out


# 2. 10,000-deep nesting
@pytest.mark.parametrize("kind", ["list", "mapping"])
def test_deep_nesting_is_refused(tmp_path, kind):
    n = 10_000
    inner = "[" * n + "]" * n if kind == "list" else "{b: " * n + "1" + "}" * n
    out = rejects(tmp_path, HEAD + "space: {builtin: nb201}\nobjective: {options: {deep: " + inner + "}}\n",
                  "objective.options.deep" + ("[0][0]" if kind == "list" else ".b.b"))
    assert "nesting deeper than 100 levels" in out


def test_moderate_nesting_is_fine(tmp_path):
    inner = "[" * 50 + "]" * 50
    text = HEAD + "space: {builtin: nb201}\nobjective: {options: {deep: " + inner + "}}\n"
    r, _, _ = validate(tmp_path, text)
    assert r.exit_code == 0, r.output


# 3. a billion-laughs alias bomb, and an alias inside its own target
def test_alias_bomb_is_refused(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = HEAD + "space: {builtin: nb201}\nobjective:\n  options:\n" + "".join(f"    {x}\n" for x in levels)
    out = rejects(tmp_path, text, "objective.options.a")
    assert "alias" in out and "100,000" in out


def test_small_aliases_are_fine(tmp_path):
    text = (HEAD + "space:\n  builtin: chain\n  params:\n    x: &xs [1, 2, 3]\n    y: *xs\n"
            "objective: {options: {a: &o {k: 1}, b: *o}}\n")
    r, _, _ = validate(tmp_path, text)
    assert r.exit_code == 0, r.output


def test_recursive_alias_is_refused(tmp_path):
    out = rejects(tmp_path, HEAD + "space: {builtin: nb201}\nobjective: {options: {a: &r [1, *r]}}\n",
                  "objective.options.a")
    assert "recursive" in out


# 4. the size of a space with many conditions is counted quickly
def _params(lines):
    return HEAD + "space:\n  params:\n" + "".join(f"    {x}\n" for x in lines) + FUNC


@pytest.mark.parametrize("shape,expect", [
    ("chain", "41 configurations"),  # p_i exists when p_{i-1} is a
    ("pairs", "more than 10^18 configurations"),  # 40 parents, then a child of each
    ("star", "1,099,511,627,777 configurations"),  # 40 parents, one child conditioned on all
    ("fan", "more than 10^18 configurations"),  # a root, 40 children with 3 choices each
])
def test_space_size_of_many_conditions_is_quick(tmp_path, shape, expect):
    if shape == "chain":
        lines = ["p0: [a, b]"] + [f"p{i}: {{type: categorical, choices: [a, b], when: {{p{i - 1}: [a]}}}}"
                                  for i in range(1, 40)]
    elif shape == "pairs":
        lines = [f"p{i}: [a, b]" for i in range(40)]
        lines += [f"c{i}: {{type: categorical, choices: [x, y, z], when: {{p{i}: [a]}}}}" for i in range(40)]
    elif shape == "star":
        lines = [f"p{i}: [a, b]" for i in range(40)]
        when = ", ".join(f"p{i}: a" for i in range(40))
        lines += ["c: {type: categorical, choices: [x, y], when: {" + when + "}}"]
    else:
        lines = ["root: [a, b]"] + [f"p{i}: {{type: categorical, choices: [a, b, c], when: {{root: [a]}}}}"
                                    for i in range(40)]
        lines += [f"q{i}: {{type: categorical, choices: [a, b], when: {{p{i}: [a, b]}}}}" for i in range(40)]
    r, took, _ = validate(tmp_path, _params(lines))
    assert r.exit_code == 0, r.output
    assert expect in r.output, r.output
    assert took < SLOW, took


# 5. the chain space's options
@pytest.mark.parametrize("options,path,what", [
    ("{max_layers: 100000}", "space.options.max_layers", "<= 64"),
    ("{min_layers: 5, max_layers: 2}", "space.options.min_layers", "must not exceed max_layers"),
    ("{min_layers: 70, max_layers: 80}", "space.options.max_layers", "<= 64"),
    ("{kind: bogus}", "space.options.kind", "'cnn', 'mlp'"),
    ("{widths: [[1, 2]]}", "space.options.widths", "positive integers"),
    ("{widths: [-3, 0]}", "space.options.widths", "positive integers"),
    ("{widths: [16, 16]}", "space.options.widths", "distinct"),
    ("{ops: [bogus]}", "space.options.ops", "conv3x3"),
    ("{kind: mlp, ops: [conv3x3]}", "space.options.ops", "relu"),
])
def test_chain_options_are_checked(tmp_path, options, path, what):
    out = rejects(tmp_path, HEAD + f"space: {{builtin: chain, options: {options}}}\n" + FUNC, path)
    assert what in out


def test_nb201_ops_are_checked(tmp_path):
    out = rejects(tmp_path, HEAD + "space: {builtin: nb201, options: {ops: [none, bogus]}}\n",
                  "space.options.ops")
    assert "nor_conv_3x3" in out


# 6. a parameter's type that is no name; integers beyond int64
@pytest.mark.parametrize("param,path", [
    ("{type: []}", "space.params.x.type"),
    ("{type: {a: 1}}", "space.params.x.type"),
    ("{type: int, low: 0, high: 100000000000000000000000}", "space.params.x.high"),
    ("{type: int, low: -9223372036854775809, high: 0}", "space.params.x.low"),
    ("{type: categorical, choices: [1, 100000000000000000000]}", "space.params.x.choices"),
])
def test_bad_parameter_types_and_int64_bounds(tmp_path, param, path):
    rejects(tmp_path, HEAD + f"space: {{params: {{x: {param}}}}}\n" + FUNC, path)


def test_int64_bounds_themselves_are_fine(tmp_path):
    r, _, _ = validate(tmp_path, HEAD + "space: {params: {x: {type: int, low: -9223372036854775808, "
                                        "high: 9223372036854775807}}}\n" + FUNC)
    assert r.exit_code == 0, r.output


# 7. long values are cut in messages
LONG = "x" * 100_000


@pytest.mark.parametrize("text,path", [
    (f"experiment: {{name: {LONG}}}\nspace: {{builtin: nb201}}\n", "experiment.name"),
    (HEAD + f"space: {{builtin: nb201}}\nstrategy: {{name: {LONG}}}\n", "strategy.name"),
    (HEAD + f"space: {{builtin: nb201}}\nbudget: {{max_trials: {LONG}}}\n", "budget.max_trials"),
    # (YAML allows keys of 1,024 characters at most)
    (HEAD + f"space: {{builtin: nb201}}\nbudget: {{{LONG[:1000]}: 1}}\n", "budget.xxxx"),
    (HEAD + f"space: {{params: {{x: [1, 2], y: {{type: int, low: 0, high: 1, when: {{x: {LONG}}}}}}}}}\n",
     "space.params.y.when.x"),
    (HEAD + f"space: {{builtin: nb201}}\nobjective: {{type: function, function: '{LONG}'}}\n",
     "objective.function"),
    (HEAD + "space: {builtin: nb201}\nexperiment: {name: " + "1" * 5000 + "}\n", "spec.yaml:3"),
])
def test_long_values_are_cut_in_messages(tmp_path, text, path):
    out = rejects(tmp_path, text, path)
    assert "x" * 200 not in out and "1" * 200 not in out


@pytest.mark.parametrize("section,key", [("checkpoint", "generations"), ("budget", "max_trials"),
                                         ("experiment", "seed")])
def test_a_very_large_integer_is_described_not_printed(tmp_path, section, key):
    head = HEAD if section != "experiment" else ""
    name = "name: t, " if section == "experiment" else ""
    text = head + f"space: {{builtin: nb201}}\n{section}: {{{name}{key}: " + "9" * 4000 + "}\n"
    out = rejects(tmp_path, text, f"{section}.{key}")
    assert "4,000 digits" in out


# 8. control characters in parameter and metric names
@pytest.mark.parametrize("text,path", [
    (HEAD + 'space: {params: {"a\\x1bb": [1, 2]}}\n' + FUNC, "space.params.a\\x1bb"),
    (HEAD + 'space: {params: {"a\\nb": [1, 2]}}\n' + FUNC, "space.params.a\\nb"),
    (HEAD + 'space: {builtin: nb201}\nobjective: {metric: "acc\\x07\\n"}\n', "objective.metric"),
    (HEAD + 'space: {builtin: nb201}\nobjective: {objectives: [{metric: "a\\x1b[31m"}, {metric: b}]}\n',
     "objective.objectives[0].metric"),
    (HEAD + 'space: {builtin: nb201}\nobjective: {constraints: [{metric: "a\\tb", max: 1}]}\n',
     "objective.constraints[0].metric"),
])
def test_control_characters_in_names_are_refused(tmp_path, text, path):
    out = rejects(tmp_path, text, path)
    assert "control characters" in out
    assert not any(c in out for c in "\x1b\x07\t"), repr(out)


def test_empty_and_self_referring_parameter_names_are_refused(tmp_path):
    out = rejects(tmp_path, HEAD + 'space: {params: {"": [1, 2]}}\n' + FUNC, "space.params")
    assert "must not be empty" in out
    out = rejects(tmp_path, HEAD + "space: {params: {x: [1, 2], y: {type: int, low: 0, high: 3, "
                                   "when: {x: [1], y: [1]}}}}\n" + FUNC, "space.params.y.when.y")
    assert "on itself" in out


# a normal spec still validates
def test_default_config_still_validates(monkeypatch):
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, ["validate", os.path.join("configs", "default.yaml")])
    assert r.exit_code == 0, r.output
    assert "valid" in r.output
