"""One suite for every registered strategy (in the spirit of Optuna's BasicSamplerTestCase)."""
import pytest
import torch
from strategy_harness import MF_FIDELITIES, Driver, build, json_roundtrip, spaces

from nasrun.space import Categorical, SearchSpace
from nasrun.strategies import STRATEGIES, WAIT
from nasrun.trial import Outcome, Suggestion

torch.set_num_threads(1)

BASE = sorted(STRATEGIES)
NAMES = BASE + [f"{n}+dedupe" for n in BASE]  # every strategy alone and wrapped by Dedupe
SPACES = spaces()


@pytest.mark.parametrize("space_name", sorted(SPACES))
@pytest.mark.parametrize("name", NAMES)
def test_configs_valid_with_async_out_of_order_tells_and_failures(name, space_name):
    space = SPACES[space_name]
    strategy = build(name, space, seed=3)
    driver = Driver(strategy, seed=1, outstanding=5)
    asked = driver.run_asks(60)
    assert len(asked) == 60
    assert [s.trial_id for s in asked] == list(range(60))
    by_id = {s.trial_id: s for s in asked}
    for s in asked:
        assert space.problems(s.config) == [], (s.config, space.problems(s.config))
        Suggestion.from_dict(s.to_dict())  # JSON-able round trip of the info too
        parent = s.resume_from if s.resume_from is not None else s.info.get("parent")
        if parent is not None:
            # a child or promotion comes from a finished, successful, earlier trial
            assert parent < s.trial_id and driver.told[parent].ok
        if s.resume_from is not None:
            assert dict(by_id[s.resume_from].config) == dict(s.config)
            assert s.budget > by_id[s.resume_from].budget
        if strategy.multi_fidelity:  # rungs 1, 2, 9: on the declared fidelities (1, 2, 5, 9)
            assert s.budget in MF_FIDELITIES.values and s.budget != 5.0
        else:
            assert s.budget is None


@pytest.mark.parametrize("name", NAMES)
def test_many_outstanding_then_reverse_tells(name):
    space = SPACES["hpo"]
    strategy = build(name, space, seed=0)
    asked = []
    for _ in range(40):
        s = strategy.ask()
        if s is WAIT:
            break
        asked.append(s)
    assert len({s.trial_id for s in asked}) == len(asked) >= 6  # rl: 3 replicas x 2 samples
    for s in reversed(asked):
        strategy.tell(Outcome(s.trial_id, "done", {"score": float(s.trial_id % 7)}))
    assert strategy.ask() is not WAIT
    with pytest.raises(KeyError):
        strategy.tell(Outcome(asked[0].trial_id, "done", {"score": 1.0}))


@pytest.mark.parametrize("name", NAMES)
def test_only_failures_never_crash(name):
    space = SPACES["chain"]
    strategy = build(name, space, seed=0)
    n = 0
    for _ in range(40):
        s = strategy.ask()
        if s is WAIT:  # nothing outstanding can be left after every tell
            assert not strategy.pending
            break
        metrics = {"score": float("nan")} if s.trial_id % 2 else {}
        status = "done" if s.trial_id % 2 else "failed"
        strategy.tell(Outcome(s.trial_id, status, metrics))
        n += 1
    assert n == 40 or name.split("+")[0] in ("hyperband", "bohb")


@pytest.mark.parametrize("space_name", ["nb201", "hpo"])
@pytest.mark.parametrize("name", NAMES)
def test_state_roundtrip_mid_run_continues_exactly(name, space_name):
    space = SPACES[space_name]
    original = Driver(build(name, space, seed=7), seed=2, outstanding=6)
    original.run_asks(45)
    assert original.pending, "the snapshot must be taken with trials outstanding"
    state = json_roundtrip(original.strategy.state_dict())
    restored_strategy = build(name, space, seed=999)  # the seed must come from the state
    restored_strategy.load_state_dict(state)
    restored = original.clone_with(restored_strategy)
    a = [s.to_dict() for s in original.run_asks(35)]
    b = [s.to_dict() for s in restored.run_asks(35)]
    assert len(a) == 35 and a == b


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_asks_different_seed_different(name):
    space = SPACES["nb201"]
    runs = [[s.config for s in Driver(build(name, space, seed=seed), seed=0).run_asks(20)]
            for seed in (0, 0, 1)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", BASE)
def test_options_have_typed_defaults_and_unknown_options_rejected(name):
    cls = STRATEGIES[name]
    for key, default in cls.options.items():
        assert isinstance(default, (bool, int, float, str)), (key, default)
    with pytest.raises(ValueError, match="unknown options"):
        cls(SPACES["nb201"], no_such_option=1)


@pytest.mark.parametrize("name", NAMES)
def test_resume_through_the_hdf5_store_continues_exactly(name, tmp_path):
    """Snapshot + replay of the logged calls (nasrun.store.replay) gives the next asks of the
    uninterrupted run: the strategy is restored from the HDF5 files alone."""
    from nasrun.store import open_store
    from nasrun.store.events import Asked, Finished, Started
    from nasrun.store.replay import restore_strategy
    space = SPACES["hpo"]
    strategy = build(name, space, seed=5)
    store = open_store(str(tmp_path))
    store.begin("x: 1", "t", None)
    store.commit({}, (-1, strategy.state_dict()))
    original = Driver(strategy, seed=4, outstanding=6)
    seq = [0]
    real_ask, real_tell = strategy.ask, strategy.tell

    def ask():
        s = real_ask()
        if s is not WAIT and s is not None and hasattr(s, "trial_id"):
            store.log(Asked(seq[0], s))
            store.log(Started(s.trial_id, 0, 0.0))
            seq[0] += 1
        return s

    def tell(outcome):
        real_tell(outcome)
        store.log(Finished(seq[0], outcome, 1.0))
        seq[0] += 1

    strategy.ask, strategy.tell = ask, tell
    original.run_asks(20)
    store.commit({}, (seq[0] - 1, strategy.state_dict()))  # a snapshot mid-run
    original.run_asks(17)  # more calls, logged but not committed: as before a kill -9
    restored = build(name, space, seed=999)
    n = restore_strategy(restored, open_store(str(tmp_path)).load())
    assert n > 0
    copy = original.clone_with(restored)
    strategy.ask, strategy.tell = real_ask, real_tell
    a = [s.to_dict() for s in original.run_asks(25)]
    b = [s.to_dict() for s in copy.run_asks(25)]
    assert len(a) == 25 and a == b


def _evaluations(strategy):
    """Wrap ``strategy`` to record, at each ask, whether its key was already evaluated
    successfully or is being evaluated (a duplicate), and the successful evaluations."""
    key = strategy.key
    state = {"ok": set(), "running": {}, "duplicates": 0, "asked": 0}
    real_ask, real_tell = strategy.ask, strategy.tell

    def ask():
        s = real_ask()
        if hasattr(s, "trial_id"):
            k = key(s.config, s.budget)
            state["duplicates"] += k in state["ok"] or k in state["running"].values()
            state["running"][s.trial_id] = k
            state["asked"] += 1
        return s

    def tell(outcome):
        k = state["running"].pop(outcome.trial_id)
        real_tell(outcome)
        if outcome.ok:
            state["ok"].add(k)

    strategy.ask, strategy.tell = ask, tell
    return state


@pytest.mark.parametrize("name", BASE)
def test_dedupe_never_evaluates_a_configuration_twice_at_one_budget(name):
    """On the nb201 cell (equivalent cells share a canonical form), asynchronous out-of-order
    tells and failures: no ask repeats a key evaluated or being evaluated; the inner strategy
    is told the cached result of its duplicates (it keeps learning), and its outstanding
    suggestions are exactly the running evaluations' and the duplicates waiting for them."""
    strategy = build(f"{name}+dedupe", SPACES["nb201"], seed=2)
    state = _evaluations(strategy)
    driver = Driver(strategy, seed=3, outstanding=5)
    asked = driver.run_asks(150)
    assert len(asked) == 150 and [s.trial_id for s in asked] == list(range(150))
    assert state["duplicates"] == 0
    assert strategy.answered > 0  # duplicates proposed, answered from the cache
    waiting = sum(len(ws) for ws in strategy.waiters.values())
    owned = sum(1 for inner_id, _ in strategy.running.values() if inner_id is not None)
    assert len(strategy.inner.pending) == owned + waiting
    assert strategy.inner.next_id == len(strategy.alias) >= 150 - strategy.fallbacks


@pytest.mark.parametrize("name", BASE)
def test_dedupe_finishes_on_a_space_smaller_than_the_budget(name):
    """Four configurations: the run ends with FINISHED after each was evaluated once (failed
    ones may be evaluated again), never spinning; a multi-fidelity strategy evaluates each at
    its lowest budget at least, and no key twice (budgets 1, 3, 9: twelve keys)."""
    from nasrun.strategies import FINISHED
    space = SearchSpace([Categorical("a", {}, ("x", "y")), Categorical("b", {}, (1, 2))])
    strategy = build(f"{name}+dedupe", space, seed=0)
    state = _evaluations(strategy)
    driver = Driver(strategy, seed=0, outstanding=3)
    for _ in range(500):
        if driver.step() is FINISHED:
            break
    else:
        raise AssertionError("no FINISHED within 500 steps")
    assert state["duplicates"] == 0
    assert {k.partition("|")[2] for k in state["ok"]} == {strategy.canonical(c) for c in (
        {"a": "x", "b": 1}, {"a": "x", "b": 2}, {"a": "y", "b": 1}, {"a": "y", "b": 2})}
    assert len(state["ok"]) <= (12 if strategy.multi_fidelity else 4)
    assert state["asked"] - len(state["ok"]) <= state["asked"] // 5 + 1  # only failures repeat
