"""Objectives that score a configuration without training it (tabular benchmarks)."""
from .nb201_table import NB201Objective, NB201Table, default_nb201_dir, load_nb201

__all__ = ["NB201Objective", "NB201Table", "default_nb201_dir", "load_nb201"]
