"""Reading YAML with a safe loader that remembers line numbers and refuses duplicated keys."""
from __future__ import annotations

from typing import Any, Dict, Optional

import yaml

from ..errors import SpecError


class LineDict(dict):
    """A dict that remembers the 1-based line of each key (``lines``) and of itself (``line``)."""

    lines: Dict[Any, int]
    line: Optional[int] = None


class _Loader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) whose mappings are LineDicts; duplicated keys are errors."""

    file: Optional[str] = None


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.lines = {}
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise SpecError("a mapping key must be a plain value", file=loader.file,
                            line=key_node.start_mark.line + 1) from None
        if key in out:
            raise SpecError(f"duplicated key {key!r} (first on line {out.lines[key]})", file=loader.file,
                            line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, file: Optional[str] = None) -> Any:
    """Parse YAML text safely; syntax errors become SpecError with the file and line."""
    loader = _Loader(text)
    loader.file = file
    try:
        return loader.get_single_data()
    except SpecError:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise SpecError(f"YAML syntax error: {msg}", file=file, line=line) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {e}", file=file) from None
    finally:
        loader.dispose()
