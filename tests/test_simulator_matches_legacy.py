"""With one group the new simulator (the real driver on a virtual clock) asks and tells in
exactly the order of the old event loop, for every strategy and the same seed."""
import pytest
from legacy_simulate import simulate as legacy

from nasrun.objectives import NB201Objective
from nasrun.simulate import nb201_spec, simulate_spec


@pytest.mark.parametrize("name", ["random", "evolution", "rl", "hyperband", "asha", "bohb"])
def test_one_group_same_trial_sequence_as_the_old_loop(name):
    spec = nb201_spec(name, seed=4)
    old = legacy(spec.make_strategy(), NB201Objective(), 1, max_trials=60)
    new = simulate_spec(name, workers=1, max_trials=60, seeds=[4])[0]
    a = [(t.suggestion.trial_id, dict(t.suggestion.config), t.suggestion.budget) for t in old.trials]
    b = [(r.trial_id, dict(r.suggestion.config), r.suggestion.budget) for r in new.trials]
    assert len(a) == 60 and a == b
