"""Experiment specs: load a YAML file, validate it, and build the objects it describes."""
from __future__ import annotations

import os
from typing import Optional

import yaml

from ..errors import SpecError
from .fields import to_plain
from .loader import load_yaml
from .schema import SECTIONS, Spec, build_spec

__all__ = ["SECTIONS", "Spec", "SpecError", "build_spec", "dump_spec", "load_spec", "parse_spec"]


def parse_spec(text: str, file: Optional[str] = None) -> Spec:
    return build_spec(load_yaml(text, file), file)


def load_spec(path: str) -> Spec:
    """Read and validate a spec file; every problem is a SpecError naming file, line and key path."""
    if not os.path.exists(path):
        raise SpecError("file not found", file=path)
    if os.path.isdir(path):
        raise SpecError("is a directory, expected a YAML spec file", file=path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise SpecError("not a text file (expected UTF-8 YAML)", file=path) from None
    except OSError as e:
        raise SpecError(f"cannot read: {e.strerror}", file=path) from None
    return parse_spec(text, path)


def dump_spec(spec: Spec) -> str:
    """The full spec (defaults filled in) as YAML; ``parse_spec(dump_spec(s)) == s``."""
    return yaml.safe_dump(to_plain(spec), sort_keys=False)
