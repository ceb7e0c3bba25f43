"""Plain nested data <-> JSON text plus a list of numpy arrays, exactly and without pickle.

:func:`encode` turns dicts, lists, tuples, str, int (any size), float, bool, None, bytes, numpy
scalars and numpy arrays into a JSON text and a list of arrays; the arrays are meant to be stored
as datasets next to the JSON (``arrays/0``, ``arrays/1``...). :func:`decode` restores the same
structure with the same types and dtypes. Anything else (sets, objects, object arrays) is refused
with a ``TypeError`` naming where it was found; nothing is ever pickled.

JSON forms (readable by any JSON parser; Python's ``json`` also reads the NaN/Infinity floats):

* a dict whose keys are all str and none is ``"__nasrun__"`` stays a JSON object;
* everything else that JSON cannot say is an object tagged with ``"__nasrun__"``:
  ``{"__nasrun__": "ndarray", "ref": i}`` (the i-th array), ``{"__nasrun__": "numpy", "dtype":
  "<f4", "value": 1.5}`` (a numpy scalar), ``{"__nasrun__": "tuple", "items": [...]}``,
  ``{"__nasrun__": "dict", "items": [[key, value], ...]}`` (non-str keys, key order kept),
  ``{"__nasrun__": "bytes", "base64": "..."}``.
"""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, List, Tuple

import numpy as np

TAG = "__nasrun__"
# dtype kinds stored as datasets: bool, ints, floats, complex, fixed-length bytes
ARRAY_KINDS = "biufcS"


def encode(obj: Any, where: str = "value") -> Tuple[str, List[np.ndarray]]:
    """``obj`` as (JSON text, arrays). ``where`` names the value in error messages."""
    arrays: List[np.ndarray] = []
    tree = _enc(obj, arrays, where)
    return json.dumps(tree, ensure_ascii=False, separators=(",", ":")), arrays


def decode(text: str, arrays: List[np.ndarray]) -> Any:
    """The inverse of :func:`encode`; ``ValueError`` on a malformed document."""
    return _dec(json.loads(text), arrays)


def _enc(x: Any, arrays: List[np.ndarray], where: str) -> Any:
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, int) and type(x) is int:
        return x
    if isinstance(x, float) and type(x) is float:
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in ARRAY_KINDS or x.dtype.fields is not None:
            raise TypeError(f"{where}: cannot store a numpy array of dtype {x.dtype}")
        arrays.append(x)
        return {TAG: "ndarray", "ref": len(arrays) - 1}
    if isinstance(x, np.generic):
        dt = x.dtype
        if dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8):
            return {TAG: "numpy", "dtype": dt.str, "value": x.item()}
        if dt.kind in ARRAY_KINDS:  # complex, long double, bytes: keep them exactly as 0-d arrays
            arrays.append(np.asarray(x))
            return {TAG: "numpy", "dtype": dt.str, "ref": len(arrays) - 1}
        raise TypeError(f"{where}: cannot store a numpy scalar of dtype {dt}")
    if type(x) is bytes:
        return {TAG: "bytes", "base64": base64.b64encode(x).decode("ascii")}
    if type(x) is list:
        return [_enc(v, arrays, f"{where}[{i}]") for i, v in enumerate(x)]
    if type(x) is tuple:
        return {TAG: "tuple", "items": [_enc(v, arrays, f"{where}[{i}]") for i, v in enumerate(x)]}
    if type(x) is dict:
        if all(type(k) is str for k in x) and TAG not in x:
            return {k: _enc(v, arrays, f"{where}.{k}") for k, v in x.items()}
        return {TAG: "dict", "items": [[_enc(k, arrays, f"{where}<key {k!r}>"),
                                        _enc(v, arrays, f"{where}[{k!r}]")] for k, v in x.items()]}
    raise TypeError(f"{where}: cannot store a value of type {type(x).__name__} "
                    "(expected dict, list, tuple, str, int, float, bool, None, bytes or numpy data)")


def _dec(x: Any, arrays: List[np.ndarray]) -> Any:
    if isinstance(x, list):
        return [_dec(v, arrays) for v in x]
    if not isinstance(x, dict):
        return x
    kind = x.get(TAG)
    if kind is None:
        return {k: _dec(v, arrays) for k, v in x.items()}
    if kind == "ndarray":
        return arrays[_ref(x, arrays)]
    if kind == "numpy":
        dt = np.dtype(x["dtype"])
        if "ref" in x:
            return arrays[_ref(x, arrays)].astype(dt)[()]
        return dt.type(x["value"])
    if kind == "tuple":
        return tuple(_dec(v, arrays) for v in x["items"])
    if kind == "dict":
        out = {}
        for k, v in x["items"]:
            out[_dec(k, arrays)] = _dec(v, arrays)
        return out
    if kind == "bytes":
        return base64.b64decode(x["base64"])
    raise ValueError(f"unknown tagged value {kind!r}")


def _ref(x: Dict[str, Any], arrays: List[np.ndarray]) -> int:
    i = x.get("ref")
    if not isinstance(i, int) or not 0 <= i < len(arrays):
        raise ValueError(f"array reference {i!r} out of range (have {len(arrays)} arrays)")
    return i
