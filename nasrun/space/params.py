"""Search-space parameters and the :class:`SearchSpace` that holds them.

A space is an ordered set of parameters. Each is categorical, integer or float (linear or log
scale) and may carry a condition: it exists only when earlier parameters have one of the listed
values (``when: {optimizer: [sgd]}``). A configuration is a flat dict holding the active
parameters only.

Everything here is pure and deterministic given a ``numpy.random.Generator``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

Condition = Mapping[str, Tuple[Any, ...]]

SIZE_CAP = 10 ** 18  # SearchSpace.size() says "more than 10^18" beyond this
SIZE_STATES = 100_000  # and gives a lower bound when counting would need more bookkeeping
SIZE_WORK = 2_000_000  # or more steps than this


class AtLeast(float):
    """A space size known only from below: prints as "more than N" in any format."""

    text: str

    def __new__(cls, value: float, text: str = "") -> AtLeast:
        obj = super().__new__(cls, value)
        obj.text = text or f"{int(value):,}"
        return obj

    def __format__(self, spec: str) -> str:
        return f"more than {self.text}"

    def __str__(self) -> str:
        return f"more than {self.text}"

    __repr__ = __str__


@dataclass(frozen=True)
class Param:
    name: str
    when: Condition = field(default_factory=dict)

    kind = "param"

    # -- interface -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def mutate(self, value: Any, rng: np.random.Generator) -> Any:
        """A value different from ``value`` (when the parameter has more than one)."""
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:
        """Map a value to [0, 1] (categoricals: the index, centred in its cell)."""
        raise NotImplementedError

    def from_unit(self, u: float) -> Any:
        raise NotImplementedError

    def grid(self, bins: int) -> List[Any]:
        """The values a token-based sampler (the RL controller) chooses from."""
        raise NotImplementedError

    @property
    def cardinality(self) -> float:
        raise NotImplementedError

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"type": self.kind}
        d.update(self._fields())
        if self.when:
            d["when"] = {k: list(v) for k, v in self.when.items()}
        return d

    def _fields(self) -> Dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Categorical(Param):
    choices: Tuple[Any, ...] = ()
    kind = "categorical"

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"{self.name}: a categorical needs at least one choice")
        lookup = {_key(c): i for i, c in enumerate(self.choices)}
        if len(lookup) != len(self.choices):
            raise ValueError(f"{self.name}: choices must be distinct")
        object.__setattr__(self, "_lookup", lookup)  # not a field: derived from choices

    def sample(self, rng):
        return self.choices[int(rng.integers(len(self.choices)))]

    def index(self, value: Any) -> int:
        try:
            return self._lookup[_key(value)]  # type: ignore[attr-defined]
        except (KeyError, TypeError):  # TypeError: an unhashable value is no choice either
            raise ValueError(f"{value!r} is not a choice of {self.name}") from None

    def contains(self, value):
        try:
            self.index(value)
            return True
        except ValueError:
            return False

    def mutate(self, value, rng):
        if len(self.choices) == 1:
            return value
        i = self.index(value)
        j = int(rng.integers(len(self.choices) - 1))
        return self.choices[j + (j >= i)]

    def to_unit(self, value):
        return (self.index(value) + 0.5) / len(self.choices)

    def from_unit(self, u):
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def grid(self, bins):
        return list(self.choices)

    @property
    def cardinality(self):
        return len(self.choices)

    def _fields(self):
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Integer(Param):
    low: int = 0
    high: int = 1
    log: bool = False
    kind = "int"

    def __post_init__(self) -> None:
        _check_bounds(self)

    def sample(self, rng):
        if self.log:
            return self.from_unit(float(rng.random()))
        return int(rng.integers(self.low, self.high + 1))

    def contains(self, value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
            and self.low <= value <= self.high

    def mutate(self, value, rng):
        if self.low == self.high:
            return value
        # a step of 1 to about a quarter of the range, either way, kept inside the bounds
        span = max(1, (self.high - self.low) // 4)
        while True:
            step = int(rng.integers(1, span + 1)) * (1 if rng.random() < 0.5 else -1)
            new = min(self.high, max(self.low, int(value) + step))
            if new != value:
                return new

    def to_unit(self, value):
        if self.log:  # cells [v, v+1) on a log axis from low to high+1
            return (math.log(value + 0.5) - math.log(self.low)) / \
                (math.log(self.high + 1) - math.log(self.low))
        return (value - self.low + 0.5) / (self.high - self.low + 1)

    def from_unit(self, u):
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            v = math.floor(math.exp(math.log(self.low)
                                    + u * (math.log(self.high + 1) - math.log(self.low))))
        else:
            v = self.low + math.floor(u * (self.high - self.low + 1))
        return int(min(self.high, max(self.low, v)))

    def grid(self, bins):
        n = self.high - self.low + 1
        if n <= bins:
            return list(range(self.low, self.high + 1))
        return sorted({self.from_unit((i + 0.5) / bins) for i in range(bins)})

    @property
    def cardinality(self):
        return self.high - self.low + 1

    def _fields(self):
        return _bound_fields(self)


@dataclass(frozen=True)
class Float(Param):
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    kind = "float"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"{self.name}: bounds must be finite")
        _check_bounds(self)

    def sample(self, rng):
        return self.from_unit(float(rng.random()))

    def contains(self, value):
        return isinstance(value, (int, float, np.floating, np.integer)) \
            and not isinstance(value, bool) and self.low <= value <= self.high

    def mutate(self, value, rng):
        if self.low == self.high:
            return value
        # Gaussian step of 10% of the (log) range, reflected into the bounds
        u = self.to_unit(value) + float(rng.normal(0.0, 0.1))
        u = abs(u) % 2.0
        u = 2.0 - u if u > 1.0 else u
        return self.from_unit(u)

    def to_unit(self, value):
        if self.low == self.high:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, u):
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return float(min(self.high, max(self.low, v)))

    def grid(self, bins):
        if self.low == self.high:
            return [float(self.low)]
        return [self.from_unit(i / (bins - 1)) for i in range(bins)] if bins > 1 else [self.from_unit(0.5)]

    @property
    def cardinality(self):
        return 1 if self.low == self.high else math.inf

    def _fields(self):
        return _bound_fields(self)


def _check_bounds(p: Any) -> None:
    """low <= high, and low > 0 on a log scale (Integer and Float)."""
    if p.low > p.high:
        raise ValueError(f"{p.name}: low ({p.low}) must not exceed high ({p.high})")
    if p.log and p.low <= 0:
        raise ValueError(f"{p.name}: a log scale needs low > 0")


def _bound_fields(p: Any) -> Dict[str, Any]:
    d = {"low": p.low, "high": p.high}
    if p.log:
        d["log"] = True
    return d


def _can_take(p: Param, key: Tuple[str, Any]) -> bool:
    """Whether a value with identity ``key`` (see :func:`_key`) is one ``p`` takes (an Integer
    takes ints, a Float floats: a condition on 1 never meets a Float's 1.0)."""
    if isinstance(p, Categorical):
        return key in p._lookup  # type: ignore[attr-defined]
    if isinstance(p, (Integer, Float)):
        return key[0] == type(p.low).__name__ and p.contains(key[1])
    raise TypeError(f"unknown parameter kind {type(p).__name__}")


def _key(v: Any) -> Tuple[str, Any]:
    """A hashable identity for a choice that keeps True apart from 1 and 1 apart from 1.0."""
    return (type(v).__name__, v)


class SearchSpace:
    """An ordered collection of parameters, conditions allowed on earlier parameters only."""

    def __init__(self, params: Iterable[Param]):
        self.params: Dict[str, Param] = {}
        for p in params:
            if p.name in self.params:
                raise ValueError(f"parameter {p.name!r} is defined twice")
            for parent, allowed in p.when.items():
                if parent not in self.params:
                    raise ValueError(f"{p.name}: condition on unknown or later parameter {parent!r}")
                for v in allowed:
                    if not self.params[parent].contains(v):
                        raise ValueError(f"{p.name}: condition value {v!r} is not a value of {parent!r}")
            self.params[p.name] = p
        # each condition's allowed values as a set of keys, for is_active
        self._allowed = {p.name: {parent: {_key(a) for a in allowed} for parent, allowed in p.when.items()}
                         for p in self.params.values()}
        if not self.params:
            raise ValueError("a search space needs at least one parameter")

    # -- basic queries ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params.values())

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def is_active(self, p: Param, config: Mapping[str, Any]) -> bool:
        for parent, allowed in self._allowed[p.name].items():
            if parent not in config:
                return False
            try:
                if _key(config[parent]) not in allowed:
                    return False
            except TypeError:  # an unhashable value matches no condition
                return False
        return True

    # -- sampling and checking -------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        for p in self.params.values():
            if self.is_active(p, config):
                config[p.name] = p.sample(rng)
        return config

    def problems(self, config: Mapping[str, Any]) -> List[str]:
        """Why ``config`` is not a valid configuration of this space (empty when it is)."""
        out = []
        seen: Dict[str, Any] = {}
        for p in self.params.values():
            active = self.is_active(p, seen)
            if active and p.name not in config:
                out.append(f"{p.name}: missing")
            elif not active and p.name in config:
                out.append(f"{p.name}: present but its condition is not met")
            elif active and not p.contains(config[p.name]):
                out.append(f"{p.name}: {config[p.name]!r} is outside the parameter's range")
            if p.name in config:
                seen[p.name] = config[p.name]
        for name in config:
            if name not in self.params:
                out.append(f"{name}: not a parameter of the space")
        return out

    def contains(self, config: Mapping[str, Any]) -> bool:
        return not self.problems(config)

    def complete(self, partial: Mapping[str, Any], rng: np.random.Generator) -> Dict[str, Any]:
        """Keep the active values of ``partial``, sample the missing active ones, drop the rest."""
        config: Dict[str, Any] = {}
        for p in self.params.values():
            if self.is_active(p, config):
                v = partial.get(p.name)
                config[p.name] = v if (p.name in partial and p.contains(v)) else p.sample(rng)
        return config

    def mutate(self, config: Mapping[str, Any], rng: np.random.Generator) -> Dict[str, Any]:
        """Change one active parameter (one that can change), then repair the conditions."""
        names = [n for n in config if n in self.params and self.params[n].cardinality > 1]
        if not names:
            return dict(config)
        name = names[int(rng.integers(len(names)))]
        changed = dict(config)
        changed[name] = self.params[name].mutate(config[name], rng)
        return self.complete(changed, rng)

    # -- encodings -------------------------------------------------------------------------
    def to_vector(self, config: Mapping[str, Any]) -> np.ndarray:
        """Each parameter in [0, 1]; NaN for inactive ones (for model-based samplers)."""
        return np.array([p.to_unit(config[p.name]) if p.name in config else np.nan
                         for p in self.params.values()], dtype=float)

    def from_vector(self, vec: Sequence[float], rng: np.random.Generator) -> Dict[str, Any]:
        partial = {p.name: p.from_unit(u) for p, u in zip(self.params.values(), vec)
                   if not math.isnan(u)}
        return self.complete(partial, rng)

    def size(self) -> float:
        """The number of distinct configurations (``inf`` with a continuous parameter).

        Counted per group of parameters linked by conditions (the groups multiply), carrying
        forward only how the values of earlier parameters still named by later conditions
        classify for those conditions, so that it takes time about linear in the space for the
        usual condition shapes. A count above :data:`SIZE_CAP`, or one whose bookkeeping grows
        beyond :data:`SIZE_STATES`, is returned as :class:`AtLeast` (a float that prints as
        "more than ...")."""
        params = list(self.params.values())
        if any(p.cardinality == math.inf for p in params):
            return math.inf
        total, budget = 1, [SIZE_WORK]
        for group in self._groups():
            n, exact = self._count(group, budget)
            total *= n
            if total > SIZE_CAP:
                return AtLeast(SIZE_CAP, "10^18")
            if not exact:  # n is a lower bound; the groups not counted have one configuration at least
                return AtLeast(total)
        return float(total)

    def _groups(self) -> List[List[Param]]:
        """The parameters in order, split into groups that no condition links."""
        root = {name: name for name in self.params}

        def find(n: str) -> str:
            while root[n] != n:
                root[n] = root[root[n]]
                n = root[n]
            return n

        for p in self.params.values():
            for parent in p.when:
                root[find(p.name)] = find(parent)
        groups: Dict[str, List[Param]] = {}
        for p in self.params.values():
            groups.setdefault(find(p.name), []).append(p)
        return [self._depth_first(g) for g in groups.values()]

    @staticmethod
    def _depth_first(group: List[Param]) -> List[Param]:
        """The group's parameters, each after its parents and as soon after them as it can be
        (so that few conditions are half looked at while counting)."""
        waiting = {p.name: len(p.when) for p in group}
        children: Dict[str, List[Param]] = {}
        for p in group:
            for parent in p.when:
                children.setdefault(parent, []).append(p)
        stack = [p for p in reversed(group) if not p.when]
        out: List[Param] = []
        while stack:
            p = stack.pop()
            out.append(p)
            ready = []
            for child in children.get(p.name, []):
                waiting[child.name] -= 1
                if waiting[child.name] == 0:
                    ready.append(child)
            stack.extend(reversed(ready))
        return out

    def _count(self, group: List[Param], budget: List[int]) -> Tuple[int, bool]:
        """(configurations of one group, whether exact); not exact means a lower bound.

        Goes through the parameters in order, keeping the number of partial configurations per
        state, where a state says, for each later parameter with a condition on the parameters
        seen so far, whether that condition still holds (one bit per such parameter). Stops with a
        lower bound (the number of states) when the states or ``budget[0]`` (steps) run out."""
        if len(group) == 1:
            return int(group[0].cardinality), True
        bit = {p.name: 1 << i for i, p in enumerate(group)}
        children: Dict[str, List[Param]] = {}
        for p in group:
            for parent in p.when:
                children.setdefault(parent, []).append(p)
        pending = 0  # bits of the later parameters some condition of which has been looked at
        states: Dict[int, int] = {0: 1}  # bits of the conditions that hold so far -> count
        for p in group:
            me = bit[p.name]
            kids = children.get(p.name, [])
            kid_bits = sum(bit[k.name] for k in kids)
            fresh = kid_bits & ~pending  # conditions looked at for the first time: they hold so far
            classes = self._classes(p, kids, bit) if kids else {}
            new: Dict[int, int] = {}
            budget[0] -= len(states)
            if budget[0] < 0:
                return len(states), False
            for state, n in states.items():
                if len(new) > SIZE_STATES:  # each state stands for at least one configuration
                    return len(new), False
                active = not p.when or bool(state & me)
                state = (state & ~me) | fresh
                if not kids:
                    key, n = state, n * int(p.cardinality) if active else n
                    new[key] = new.get(key, 0) + n
                elif active:
                    for allowed, mult in classes.items():
                        key = state & (~kid_bits | allowed)
                        new[key] = new.get(key, 0) + n * mult
                else:
                    key = state & ~kid_bits
                    new[key] = new.get(key, 0) + n
            pending = (pending & ~me) | kid_bits
            states = new
        return sum(states.values()), True

    def _classes(self, p: Param, kids: List[Param], bit: Mapping[str, int]) -> Dict[int, int]:
        """p's values grouped by which of its children's conditions they meet (as bits): bits -> count."""
        allows: Dict[Tuple[str, Any], int] = {}  # a value p can take -> bits of the children it allows
        for k in kids:
            b = bit[k.name]
            for key in self._allowed[k.name][p.name]:
                if key in allows:
                    allows[key] |= b
                elif _can_take(p, key):
                    allows[key] = b
        out: Dict[int, int] = {}
        for allowed in allows.values():
            out[allowed] = out.get(allowed, 0) + 1
        rest = int(p.cardinality) - len(allows)  # values no condition names
        if rest > 0:
            out[0] = out.get(0, 0) + rest
        return out

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        return {name: p.to_dict() for name, p in self.params.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> "SearchSpace":
        return cls(param_from_dict(name, spec) for name, spec in d.items())

    def __repr__(self) -> str:
        size = self.size()
        text = size if isinstance(size, AtLeast) else format(size, "g")
        return f"SearchSpace({len(self)} parameters, size {text})"


def param_from_dict(name: str, spec: Mapping[str, Any]) -> Param:
    """Build a parameter from its plain-dict form (as written in the spec, already validated)."""
    when = {k: tuple(v) if isinstance(v, (list, tuple)) else (v,)
            for k, v in (spec.get("when") or {}).items()}
    kind = spec["type"]
    if kind == "categorical":
        return Categorical(name, when, tuple(spec["choices"]))
    if kind == "int":
        return Integer(name, when, int(spec["low"]), int(spec["high"]), bool(spec.get("log", False)))
    if kind == "float":
        return Float(name, when, float(spec["low"]), float(spec["high"]), bool(spec.get("log", False)))
    raise ValueError(f"{name}: unknown parameter type {kind!r}")
