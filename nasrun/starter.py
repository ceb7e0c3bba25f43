"""The specs that ``nasrun init`` writes: the commented starter spec (``nasrun/starter.yaml``) and
the shipped examples (``nasrun/configs/NAME.yaml``, also at ``configs/`` in the repository).

They are package data, read through :mod:`importlib.resources`, so an installed wheel has them.
"""
from __future__ import annotations

from importlib.resources import files
from typing import List

from .errors import UserInputError
from .spec.fields import suggest

PACKAGE = "nasrun"
EXAMPLES = "configs"


def starter_text() -> str:
    """The commented starter spec."""
    return files(PACKAGE).joinpath("starter.yaml").read_text(encoding="utf-8")


def example_names() -> List[str]:
    """The shipped examples, by name (the file name without ``.yaml``), sorted."""
    return sorted(p.name[:-len(".yaml")] for p in files(PACKAGE).joinpath(EXAMPLES).iterdir()
                  if p.name.endswith(".yaml"))


def example_text(name: str) -> str:
    """The example ``name``; UserInputError (exit 2) naming the examples when there is none."""
    names = example_names()
    if name not in names:
        raise UserInputError(f"--example: no example named {name!r}{suggest(name, names)}; "
                             f"shipped: {', '.join(names)} (nasrun init --list)")
    return files(PACKAGE).joinpath(EXAMPLES).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def example_summary(name: str, width: int = 100) -> str:
    """The first sentence of the example's leading comment (what it is), for ``nasrun init --list``."""
    lines = []
    for line in example_text(name).splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(x for x in lines if x)
    text = text.split(". ", 1)[0].rstrip(".")
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."
