"""Experiment checkpoints (see :mod:`nasrun.store.base` for what a store guarantees)."""
from .base import DONE, FAILED, QUEUED, RUNNING, MemoryStore, ModelState, Snapshot, Store, TrialRecord

__all__ = ["DONE", "FAILED", "MemoryStore", "ModelState", "QUEUED", "RUNNING", "Snapshot", "Store",
           "TrialRecord"]
