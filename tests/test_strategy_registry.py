"""The strategy declarations (what the spec validator reads, importing no implementation) match
the implementation classes: a strategy whose options or flags drift from its declaration fails."""
import subprocess
import sys

import pytest

from nasrun.strategies import Strategy
from nasrun.strategies.registry import DECLARED, make_strategy


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declaration_matches_its_class(name):
    d = DECLARED[name]
    cls = d.load()
    assert issubclass(cls, Strategy)
    assert dict(d.options) == cls.options  # the same names with the same defaults...
    for key, default in d.options.items():  # ...of the same types (1 == 1.0 == True in Python)
        assert type(default) is type(cls.options[key]), (key, default, cls.options[key])
    assert (d.multi_fidelity, d.multi_objective) == (cls.multi_fidelity, cls.multi_objective)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_requires_names_the_heavy_modules_its_implementation_imports(name):
    """The spec validator builds a strategy declared without `requires`: importing its
    implementation must import neither torch nor mpi4py nor horovod; one that does says so."""
    code = ("import sys\nfrom nasrun.strategies.registry import DECLARED\n"
            f"DECLARED[{name!r}].load()\n"
            "print(*[m for m in ('torch', 'mpi4py', 'horovod') if m in sys.modules])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(p.stdout.split()) == set(DECLARED[name].requires)


def test_make_strategy_builds_by_name():
    from nasrun.space import Float, SearchSpace
    s = make_strategy("evolution", SearchSpace([Float("x", {}, 0.0, 1.0)]), seed=3, population_size=4,
                      sample_size=2)
    assert type(s).__name__ == "RegularizedEvolution" and s.opts["population_size"] == 4
