"""nasrun: neural architecture search and hyperparameter optimization as MPI batch jobs."""

__version__ = "0.1.0"
