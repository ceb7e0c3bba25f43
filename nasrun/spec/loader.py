"""Reading YAML with a safe loader that remembers line numbers and refuses duplicated keys.

The loader also bounds what a hostile file can cost: nesting deeper than :data:`MAX_DEPTH`
levels, and documents whose aliases (``*name``) expand to more than :data:`MAX_VALUES` values
(a "billion laughs" bomb), are refused while the document is composed, before anything is built.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import yaml

from ..errors import SpecError
from .fields import shorten

MAX_DEPTH = 100  # nested lists/mappings
MAX_VALUES = 100_000  # values in the document, counting every alias as a copy of its target


class LineDict(Dict[Any, Any]):
    """A dict that remembers the 1-based line of each key (``lines``) and of itself (``line``)."""

    lines: Dict[Any, int]
    line: Optional[int] = None


class _Loader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) whose mappings are LineDicts; duplicated keys are errors;
    nesting depth and alias expansion are bounded."""

    file: Optional[str] = None

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: List[str] = []  # key path of the node being composed (for messages)
        self._sizes: Dict[int, int] = {}  # id(node) -> values under it, aliases expanded
        self._aliases = False
        self._depth = 0  # lists/mappings being composed around the current node

    def _where(self) -> str:
        where = "".join(self._path).lstrip(".")
        return where if len(where) <= 80 else f"{where[:80]}... ({len(self._path)} levels)"

    def compose_node(self, parent: Optional[yaml.Node], index: Any) -> Optional[yaml.Node]:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:  # its target is still being composed: it contains itself
                raise SpecError(f"the alias *{shorten(event.anchor, 40, quote=False)} refers to a value that "
                                "contains it (a recursive value); write the values out instead",
                                self._where(), self.file, event.start_mark.line + 1)
            self._aliases = True
            return node
        event = self.peek_event()
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if collection and self._depth >= MAX_DEPTH:
            raise SpecError(f"nesting deeper than {MAX_DEPTH} levels of lists or mappings; a spec needs "
                            "a few",
                            self._where(), self.file, event.start_mark.line + 1)
        self._depth += collection
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= collection
        if node is None:  # only at the end of a stream, never for the node events checked above
            return None
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes[id(v)] for v in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        else:
            size = 1
        if size > MAX_VALUES:
            how = " once its aliases (*name) are expanded" if self._aliases else ""
            raise SpecError(f"the document holds more than {MAX_VALUES:,} values{how} (a YAML alias "
                            "bomb?); a spec needs far fewer", self._where(), self.file,
                            node.start_mark.line + 1)
        self._sizes[id(node)] = size
        return node

    # ``anchor`` is the anchor's name (str | None); types-PyYAML declares it a dict, hence Any.
    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        # PyYAML's own, pushing each item's index on the key path
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.SequenceNode, None, start.implicit)
        node = yaml.SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        index = 0
        while not self.check_event(yaml.SequenceEndEvent):
            self._path.append(f"[{index}]")
            try:
                node.value.append(self.compose_node(node, index))
            finally:
                self._path.pop()
            index += 1
        end = self.get_event()
        node.end_mark = end.end_mark
        return node

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        # PyYAML's own, pushing each value's key on the key path
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(yaml.MappingNode, None, start.implicit)
        node = yaml.MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        while not self.check_event(yaml.MappingEndEvent):
            item_key = self.compose_node(node, None)
            label = item_key.value if isinstance(item_key, yaml.ScalarNode) else "?"
            self._path.append("." + shorten(label, 40, quote=False))
            try:
                item_value = self.compose_node(node, item_key)
            finally:
                self._path.pop()
            node.value.append((item_key, item_value))
        end = self.get_event()
        node.end_mark = end.end_mark
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (SpecError, yaml.YAMLError):
            raise
        except (ValueError, TypeError, OverflowError) as e:  # e.g. a 5,000-digit integer, 2001-13-45
            value = node.value if isinstance(node, yaml.ScalarNode) else "?"
            raise SpecError(f"cannot read the value {shorten(value)} ({shorten(str(e), 120, quote=False)})",
                            file=self.file, line=node.start_mark.line + 1) from None


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
            raise SpecError(f"duplicated key {shorten(key)} (first on line {out.lines[key]})",
                            file=loader.file, line=key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, file: Optional[str] = None) -> Any:
    """Parse YAML text safely; syntax errors become SpecError with the file and line."""
    loader = None
    try:
        loader = _Loader(text)
        loader.file = file
        return loader.get_single_data()
    except SpecError:
        raise
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (NUL, other controls)
        line = text.count("\n", 0, e.position) + 1 if isinstance(e.position, int) else None
        char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        raise SpecError(f"the file holds the character {char}, which YAML does not allow (control "
                        "characters other than tab and newline; is it a binary file?)", file=file,
                        line=line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise SpecError(f"YAML syntax error: {shorten(msg, 200, quote=False)}", file=file,
                        line=line) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {shorten(str(e), 200, quote=False)}", file=file) from None
    except RecursionError:  # should not happen with MAX_DEPTH; never a traceback
        raise SpecError(f"nesting too deep (at most {MAX_DEPTH} levels of lists or mappings)",
                        file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
