"""Experiment checkpoints (see :mod:`nasrun.store.base` for what a store guarantees)."""
from .base import DONE, FAILED, QUEUED, RUNNING, Loaded, ModelState, StateRef, Store, TrialRecord
from .hdf5 import CheckpointWarning, HDF5Store, open_store
from .memory import MemoryStore

__all__ = ["CheckpointWarning", "DONE", "FAILED", "HDF5Store", "Loaded", "MemoryStore",
           "ModelState", "QUEUED", "RUNNING", "StateRef", "Store", "TrialRecord", "open_store"]
