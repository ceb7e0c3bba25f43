"""Experiment checkpoints (see :mod:`nasrun.store.base` for what a store guarantees)."""
from .base import (
           DONE,
           FAILED,
           QUEUED,
           RUNNING,
           MemoryStore,
           ModelState,
           Snapshot,
           Store,
           TrialRecord,
)
from .hdf5 import CheckpointWarning, HDF5Store, open_store

__all__ = ["CheckpointWarning", "DONE", "FAILED", "HDF5Store", "MemoryStore", "ModelState", "QUEUED",
           "RUNNING", "Snapshot", "Store", "TrialRecord", "open_store"]
