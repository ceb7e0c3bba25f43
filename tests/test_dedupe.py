"""strategy.dedupe: its default per objective, the spec's messages, and nb201's canonical form
(the wrapper's contract is in the shared strategy suite, tests/test_strategies_common.py)."""
import itertools

import torch
from click.testing import CliRunner

from nasrun.api import optimize
from nasrun.cli import main
from nasrun.space import SearchSpace, builtin_params
from nasrun.space.builtin import NB201_EDGES, NB201_OPS, canonical_key, nb201_canonical
from nasrun.spec import parse_spec
from nasrun.strategies import Strategy
from nasrun.strategies.dedupe import Dedupe
from nasrun.trial import Outcome

torch.set_num_threads(1)

FUNC = ("objective: {type: function, function: 'tests.objectives_for_tests:score'%s}\n")


def spec(strategy="", objective=FUNC % "", space="space: {builtin: nb201}\n"):
    return parse_spec("experiment: {name: t}\n" + space + "strategy: {name: evolution%s}\n"
                      % strategy + objective, "t.yaml")


def cell(*ops):
    return {f"edge_{to}_{frm}": op for (to, frm), op in zip(NB201_EDGES, ops)}


def test_on_by_default_where_evaluations_are_deterministic():
    table = spec(objective="objective: {type: table}\n")
    assert table.dedupe() and isinstance(table.make_strategy(), Dedupe)
    assert table.make_strategy().canonical is canonical_key("nb201")
    assert not spec().dedupe() and not isinstance(spec().make_strategy(), Dedupe)
    declared = spec(objective=FUNC % ", deterministic: true")
    assert declared.dedupe() and isinstance(declared.make_strategy(), Dedupe)
    assert not spec(", dedupe: false", "objective: {type: table}\n").dedupe()
    forced = spec(", dedupe: true", space="space: {params: {x: [1, 2]}}\n")
    assert forced.dedupe() and forced.make_strategy().canonical is canonical_key(None)


def test_a_training_objective_cannot_be_declared_deterministic(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("experiment: {name: t}\nspace: {builtin: chain}\n"
                 "objective: {type: train, deterministic: true}\n")
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert str(f) in r.output and "objective.deterministic" in r.output
    assert "strategy.dedupe: true" in r.output
    f.write_text("experiment: {name: t}\nspace: {builtin: chain}\nstrategy: {dedupe: 3}\n")
    r = CliRunner().invoke(main, ["validate", str(f)])
    assert r.exit_code == 2 and "strategy.dedupe" in r.output


def test_nb201_canonical_form_merges_exactly_the_equivalent_cells():
    conv, skip, pool, none = "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none"
    # node 1 cut off from the input: the ops on its outgoing edges are dead
    assert nb201_canonical(cell(none, conv, conv, conv, conv, pool)) == \
        nb201_canonical(cell(none, conv, pool, conv, skip, pool))
    # node 2 cut off from the output (edge 3<-2 none): the ops into it are dead
    assert nb201_canonical(cell(conv, conv, conv, conv, pool, none)) == \
        nb201_canonical(cell(conv, skip, pool, conv, pool, none))
    # nodes 1 and 2 swapped (no edge between them): the same sum
    assert nb201_canonical(cell(conv, pool, none, skip, conv, "nor_conv_1x1")) == \
        nb201_canonical(cell(pool, conv, none, skip, "nor_conv_1x1", conv))
    # a skip passes its source on: conv on node 1 = skip then conv into the output
    assert nb201_canonical(cell(skip, none, none, none, conv, none)) == \
        nb201_canonical(cell(none, none, none, conv, none, none))
    # no path from input to output: all such cells compute zero
    assert nb201_canonical(cell(none, none, conv, none, pool, conv)) == "zero"
    # live differences stay different: another op, one more term, or the same term twice
    a = cell(conv, conv, conv, conv, conv, conv)
    assert nb201_canonical(a) != nb201_canonical({**a, "edge_3_2": "nor_conv_1x1"})
    assert nb201_canonical(cell(skip, none, none, skip, none, none)) != \
        nb201_canonical(cell(skip, none, none, skip, skip, none))
    # no none or skip edge: every edge is live and no two cells compute the same function
    live = [nb201_canonical(cell(*ops)) for ops in itertools.product(NB201_OPS[2:], repeat=6)]
    assert len(set(live)) == len(live) == 3 ** 6
    # extra (hyperparameter) parameters stay part of the key
    key = canonical_key("nb201")
    assert key({**a, "lr": 0.1}) != key({**a, "lr": 0.2}) and key(a) == nb201_canonical(a)


def test_optimize_on_a_deterministic_function_never_repeats_and_finishes():
    """Through the real driver: 3 configurations, a budget of 10 trials: three evaluations,
    then the search is finished; the strategy learned from its duplicates."""
    space = SearchSpace.from_dict({"x": {"type": "categorical", "choices": [1, 2, 3]}})
    trials = optimize(lambda c, b: float(c["x"]), space, strategy="evolution", n_trials=10,
                      store="memory", objective={"deterministic": True}, population_size=2)
    assert sorted(t.suggestion.config["x"] for t in trials) == [1, 2, 3]
    assert [t.suggestion.trial_id for t in trials] == [0, 1, 2]



def test_validate_says_when_duplicates_are_skipped(tmp_path):
    f = tmp_path / "s.yaml"
    for objective, dedupe, expect in [("{type: table}", "", "the objective is deterministic)"),
                                      ("{type: table}", ", dedupe: false", None),
                                      ("{type: train}", "", None),
                                      ("{type: train}", ", dedupe: true", "(strategy.dedupe)")]:
        f.write_text("experiment: {name: t}\nspace: {builtin: nb201}\n"
                     f"strategy: {{name: random{dedupe}}}\nobjective: {objective}\n")
        r = CliRunner().invoke(main, ["validate", str(f)])
        assert r.exit_code == 0, r.output
        line = [x for x in r.output.splitlines() if x.strip().startswith("duplicates")]
        assert (line[0].endswith(expect) if line else None) == (True if expect else None), r.output


class Scripted(Strategy):
    """Asks a fixed list of (config, budget, resume_from, info) and records what it is told."""
    multi_fidelity = True

    def __init__(self, space, script):
        super().__init__(space)
        self.script, self.told = list(script), []

    def ask(self):
        config, budget, resume, info = self.script.pop(0)
        return self._new(config, budget, resume, **info)

    def tell(self, outcome):
        self._take(outcome)
        self.told.append((outcome.trial_id, outcome.status, dict(outcome.metrics)))

    def promotable(self, trial_id):
        return trial_id in (0, 1)


def test_duplicates_are_answered_or_wait_and_ids_are_translated():
    conv, none = "nor_conv_3x3", "none"
    a = cell(conv, conv, conv, conv, conv, conv)
    a_dead = cell(none, conv, conv, conv, conv, conv)  # node 1 cut off: edges 2<-1, 3<-1 dead
    a_same = cell(none, conv, "avg_pool_3x3", conv, none, conv)  # a_dead's equivalent
    space = SearchSpace(builtin_params("nb201", {}))
    inner = Scripted(space, [
        (a_dead, 1.0, None, {}),            # inner 0 -> trial 0
        (a_same, 1.0, None, {}),            # inner 1: waits for trial 0
        (a, 1.0, None, {"parent": 1}),      # inner 2 -> trial 1, parent: the trial of inner 1
        (a_same, 3.0, 1, {}),               # inner 3 -> trial 2: promotes a duplicate, from scratch
        (a_dead, 3.0, 0, {}),               # inner 4: waits for trial 2 (same key at budget 3)
        (a, 1.0, None, {}),                 # inner 5: being evaluated (trial 1): waits
        (a_same, 9.0, 0, {}),               # inner 6 -> trial 3: promotes its own trial 0
    ])
    d = Dedupe(inner, canonical_key("nb201"))
    t0, t1 = d.ask(), d.ask()
    assert (t0.trial_id, t0.config, t0.budget) == (0, a_dead, 1.0)
    assert (t1.trial_id, t1.config, t1.info) == (1, a, {"parent": 0})
    assert inner.pending.keys() == {0, 1, 2} and d.pending.keys() == {0, 1}
    d.tell(Outcome(0, "done", {"valid_accuracy": 0.5, "bad": float("nan")}))
    assert [(i, st, m["valid_accuracy"]) for i, st, m in inner.told] == [(0, "done", 0.5),
                                                                         (1, "done", 0.5)]
    t2 = d.ask()
    assert (t2.trial_id, t2.budget, t2.resume_from) == (2, 3.0, None)
    t3 = d.ask()  # inner 4 and 5 wait; inner 6 continues trial 0, its own
    assert (t3.trial_id, t3.budget, t3.resume_from) == (3, 9.0, 0)
    assert d.promotable(0) and not d.promotable(1) and not d.promotable(2)
    d.tell(Outcome(1, "failed", error="oom"))  # inner 2 and the waiting inner 5 fail: no cache
    assert inner.told[2:] == [(2, "failed", {}), (5, "failed", {})]
    assert d.key(a, 1.0) not in d.results and d.key(a_dead, 1.0) in d.results
    assert d.results[d.key(a_dead, 1.0)] == (0, {"valid_accuracy": 0.5})  # finite metrics only
