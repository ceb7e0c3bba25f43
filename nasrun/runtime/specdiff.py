"""Compare the spec of a checkpoint with the spec of a resume (a pure function)."""
from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Tuple

_MISSING = object()


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def spec_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                     allowed: Iterable[str] = ()) -> Tuple[List[str], List[str]]:
    """(refused, allowed) differences between two normalised spec dicts, as readable lines.

    A key is allowed when it equals, or lies under, one of ``allowed`` (``--force KEY``).
    """
    a, b = flatten(old), flatten(new)
    allowed = list(allowed)
    refused, ok = [], []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va == vb:
            continue
        line = f"{key}: {_show(va)} -> {_show(vb)}"
        if any(key == f or key.startswith(f + ".") for f in allowed):
            ok.append(line)
        else:
            refused.append(line)
    return refused, ok


def _show(v: Any) -> str:
    return "(absent)" if v is _MISSING else repr(v)
