"""The shared suite for stoppers: every registered stopper keeps the interface's rules
(nasrun.stoppers.base): exact state on resume, trials reporting out of order, failures."""
import json

import numpy as np
import pytest

from nasrun.stoppers import STOPPERS, make_stopper

NAMES = sorted(STOPPERS)
EPOCHS = 8
# options that make each stopper act early in a short stream (its defaults wait longer)
ACTIVE = {"median": {"min_trials": 2}, "curve": {"min_trials": 2, "threshold": 0.3}}


def stream(seed, trials=24, outstanding=5):
    """Events of an asynchronous run: ("report", trial, epochs so far) of a random trial in
    flight (so trials report out of order relative to each other) and ("end", trial); every
    5th trial fails at a random epoch. The curves: noisy saturating, a level per trial."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.3, 0.95, trials)
    curves = [[float(level[i] * (1 - 0.7 * (e + 1) ** -0.8) + rng.normal(0, 0.02)) for e in range(EPOCHS)]
              for i in range(trials)]
    fail_at = {i: int(rng.integers(1, EPOCHS)) for i in range(4, trials, 5)}
    return rng, curves, fail_at


def play(stopper, seed, resume_at=None, trials=24, outstanding=5):
    """Drive ``stopper`` through the seed's stream; with ``resume_at``, replace it after that
    many events by a fresh stopper loaded from its state_dict (through JSON). Returns the
    decisions (trial, epoch, stop) and the final stopper."""
    rng, curves, fail_at = stream(seed, trials, outstanding)
    name, opts = stopper
    s = make_stopper(name, EPOCHS, **opts)
    flight, upcoming, decisions, n = {}, list(range(trials)), [], 0
    while flight or upcoming:
        while upcoming and len(flight) < outstanding:
            flight[upcoming.pop(0)] = 0
        tid = sorted(flight)[int(rng.integers(len(flight)))]
        flight[tid] += 1
        t = flight[tid]
        if fail_at.get(tid) == t:
            s.finished(tid, None)
            del flight[tid]
        else:
            stop = s.should_stop(tid, curves[tid][:t])
            decisions.append((tid, t, stop))
            if stop or t == EPOCHS:
                s.finished(tid, curves[tid][:t], stopped=stop)
                del flight[tid]
        n += 1
        if n == resume_at:
            state = json.loads(json.dumps(s.state_dict()))
            s = make_stopper(name, EPOCHS, **opts)
            s.load_state_dict(state)
    return decisions, s


@pytest.mark.parametrize("name", NAMES)
def test_state_roundtrip_mid_run_answers_exactly_the_same(name):
    for seed in range(3):
        whole, s1 = play((name, ACTIVE[name]), seed)
        assert any(stop for _, _, stop in whole), "the stream must make the stopper act"
        for at in (10, 57, 101):
            resumed, s2 = play((name, ACTIVE[name]), seed, resume_at=at)
            assert resumed == whole
            assert s2.state_dict() == s1.state_dict()


@pytest.mark.parametrize("name", NAMES)
def test_same_stream_same_decisions(name):
    assert play((name, ACTIVE[name]), 5)[0] == play((name, ACTIVE[name]), 5)[0]


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_trial_is_no_information(name):
    s = make_stopper(name, EPOCHS, **ACTIVE[name])
    for tid in range(4):
        s.finished(tid, [0.5 + 0.05 * tid] * EPOCHS)
    before = s.state_dict()
    s.finished(9, None)
    s.finished(10, [None, float("nan")])  # no finite value: nothing either
    assert s.state_dict() == before


@pytest.mark.parametrize("name", NAMES)
def test_never_stops_before_grace_or_at_the_final_epoch_or_on_missing_values(name):
    s = make_stopper(name, EPOCHS, **ACTIVE[name])
    for tid in range(6):
        s.finished(tid, [0.9] * EPOCHS)
    grace = s.opts["grace_epochs"]
    hopeless = [0.05 * (1 - 0.5 / (e + 1)) for e in range(EPOCHS)]
    assert not s.should_stop(7, hopeless[:grace - 1])
    assert s.should_stop(7, hopeless[:max(grace, 4)])  # stopped once allowed
    assert not s.should_stop(7, hopeless)  # the trial is over: nothing to save
    assert not s.should_stop(7, [None] * max(grace, 3))  # no value: no information


@pytest.mark.parametrize("name", NAMES)
def test_nothing_is_stopped_before_min_trials_have_finished(name):
    s = make_stopper(name, EPOCHS, **ACTIVE[name])
    s.finished(0, [0.9] * EPOCHS)
    hopeless = [0.05 * (1 - 0.5 / (e + 1)) for e in range(4)]
    assert not s.should_stop(1, hopeless)
    s.finished(2, [0.9] * EPOCHS)
    assert s.should_stop(1, hopeless)


@pytest.mark.parametrize("name", NAMES)
def test_options_have_typed_defaults_and_unknown_options_rejected(name):
    cls = STOPPERS[name]
    assert cls.options and all(isinstance(v, (int, float, str)) for v in cls.options.values())
    with pytest.raises(ValueError, match="unknown options"):
        make_stopper(name, EPOCHS, no_such_option=1)
    with pytest.raises(ValueError, match="epochs"):
        make_stopper(name, 0)
