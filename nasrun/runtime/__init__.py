"""The MPI runtime: roles, rank 0's driver, transports and the worker loop.

Entry point: :func:`nasrun.runtime.api.run_experiment`.
"""
