"""Typed, validated construction of frozen dataclasses from plain YAML data.

``build(cls, data, path, ctx)`` checks every key of ``data`` against the dataclass fields
(unknown keys get a did-you-mean suggestion), converts and checks each value against the
field's type hint (str, int, float, bool, Optional, List, Dict, Literal, Any, nested dataclass)
and its metadata (``min``, ``max``, ``gt``, ``pattern``), then runs the class's own
``_check(path, ctx)`` for rules that span fields. Every error is a SpecError naming the file,
the line, the key path and what was expected.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import typing
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Type, TypeVar

from ..errors import SpecError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")

MAX_ECHO = 80  # characters of a value echoed in a message
MAX_MESSAGE = 600  # a message (values already cut) is cut beyond this as a last resort


class Ctx:
    """Where a value came from: the file name, for messages."""

    def __init__(self, file: Optional[str] = None):
        self.file = file

    def error(self, message: str, path: str, data: Any = None, key: Any = None) -> SpecError:
        return SpecError(cut(printable(message), MAX_MESSAGE), cut(printable(path), 2 * MAX_ECHO),
                         self.file, line_of(data, key))


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters for a message, with its full length said."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def one_line(text: str, limit: int = 300) -> str:
    """An error's text (a traceback's last line, a message over several lines) as one line, cut."""
    return cut(" ".join(text.split()), limit)


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped (``\\x1b``, ``\\n``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 3, 8, 8, 8
_repr.maxstring = _repr.maxother = MAX_ECHO


def shorten(value: Any, limit: int = MAX_ECHO, quote: bool = True) -> str:
    """A value for a message: its repr (or, with ``quote=False``, a string as it is, unprintable
    characters escaped), cut to about ``limit`` characters with the full length said."""
    if isinstance(value, str):
        text = repr(value) if quote else printable(value)
        if len(text) <= limit:
            return text
        return f"{text[:limit]}... ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        digits = int(value.bit_length() * math.log10(2)) + 1  # without str(): Python limits it
        digits -= abs(value) < 10 ** (digits - 1)
        return f"{'a negative ' if value < 0 else 'an '}integer of {digits:,} digits"
    try:
        text = _repr.repr(value)
    except Exception:  # a value whose repr fails: say its type
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def check_name(value: Any, what: str, path: str, ctx: "Ctx", parent: Any, key: Any) -> None:
    """A name (of a parameter, a metric) must be printable: no control characters or newlines."""
    if isinstance(value, str) and not value:
        raise ctx.error(f"{what} must not be empty", path, parent, key)
    if isinstance(value, str) and not value.isprintable():
        raise ctx.error(f"{what} must not contain control characters (newline, tab, escape, ...), got "
                        f"{shorten(value)}", path, parent, key)


def line_of(data: Any, key: Any = None) -> Optional[int]:
    lines = getattr(data, "lines", None)
    if key is not None and lines and key in lines:
        line: Optional[int] = lines[key]
        return line
    return getattr(data, "line", None)


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def suggest(key: str, options: Iterable[Any]) -> str:
    if not isinstance(key, str) or len(key) > 200:  # nothing that long is a typo of an option
        return ""
    close = difflib.get_close_matches(key, [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {shorten(value)}"


def field(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field with validation metadata; mutable defaults are copied per instance."""
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    if dataclasses.is_dataclass(default):
        cls = type(default)
        return dataclasses.field(default_factory=cls, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def build(cls: Type[D], data: Any, path: str, ctx: Ctx, parent: Any = None, key: Any = None) -> D:
    """Construct dataclass ``cls`` from ``data`` (a mapping), validating everything."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ctx.error(f"expected a mapping (key: value lines), got {describe(data)}", path, parent, key)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            raise ctx.error(f"unknown key{suggest(k, fields)}; expected one of: {', '.join(fields)}",
                            join(path, k), data, k)
    values: Dict[str, Any] = {}
    for name, f in fields.items():
        p = join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ctx.error(f"required key is missing{_help(f)}", p, data)
            continue
        values[name] = convert(hints[name], data[name], p, ctx, data, name, f.metadata)
    obj = cls(**values)
    check = getattr(obj, "_check", None)
    if check is not None:
        check(path, ctx, data)
    return obj


def _help(f: dataclasses.Field[Any]) -> str:
    return f" ({f.metadata['help']})" if "help" in f.metadata else ""


def convert(hint: Any, value: Any, path: str, ctx: Ctx, parent: Any, key: Any,
            meta: Mapping[str, Any] = {}) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(inner[0], value, path, ctx, parent, key, meta)
    if origin is typing.Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise ctx.error(f"expected one of {', '.join(repr(a) for a in args)}, got "
                            f"{describe(value)}{suggest(value, args) if isinstance(value, str) else ''}",
                            path, parent, key)
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, path, ctx, parent, key)
    if origin in (list, List):
        if not isinstance(value, list):
            raise ctx.error(f"expected a list, got {describe(value)}", path, parent, key)
        return [convert(args[0], v, f"{path}[{i}]", ctx, parent, key) for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ctx.error(f"expected a mapping, got {describe(value)}", path, parent, key)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ctx.error(f"keys must be strings, got {describe(k)}", path, value, k)
            out[k] = convert(args[1], v, join(path, k), ctx, value, k)
        return out
    if hint is bool:
        if not isinstance(value, bool):
            raise ctx.error(f"expected true or false, got {describe(value)}", path, parent, key)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(f"expected an integer{_range(meta)}, got {describe(value)}", path, parent, key)
        if not -2 ** 63 <= value < 2 ** 63:  # stored as int64
            raise ctx.error(f"expected an integer{_range(meta)} that fits in 64 bits (at most 2^63-1), got "
                            f"{shorten(value)}", path, parent, key)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(f"expected a number{_range(meta)}, got {describe(value)}", path, parent, key)
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ctx.error(f"expected a finite number{_range(meta)}, got {value}", path, parent, key)
    elif hint is str:
        if not isinstance(value, str):
            raise ctx.error(f"expected a string, got {describe(value)}", path, parent, key)
        pat = meta.get("pattern")
        if pat and not re.fullmatch(pat, value):
            raise ctx.error(f"{meta.get('pattern_help', 'expected a string matching ' + pat)}, "
                            f"got {shorten(value)}", path, parent, key)
        if not value and not meta.get("empty_ok", False):
            raise ctx.error("expected a non-empty string", path, parent, key)
        if meta.get("name"):
            check_name(value, f"a {meta['name']} name", path, ctx, parent, key)
        return value
    else:  # pragma: no cover - a schema bug, not user input
        raise TypeError(f"unsupported type hint {hint!r} at {path}")
    lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (gt is not None and value <= gt):
        raise ctx.error(f"expected {'a number' if hint is float else 'an integer'}{_range(meta)}, got "
                        f"{shorten(value)}", path, parent, key)
    return value


def _range(meta: Mapping[str, Any]) -> str:
    lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
    parts = []
    if gt is not None:
        parts.append(f"> {gt}")
    if lo is not None:
        parts.append(f">= {lo}")
    if hi is not None:
        parts.append(f"<= {hi}")
    return (" " + " and ".join(parts)) if parts else ""


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists (for YAML dumps and spec comparison)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
