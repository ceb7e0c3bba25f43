"""Data-parallel backends: the few collective operations the trainer needs, over one group.

A worker group (``ranks_per_trial`` ranks, an MPI communicator of its own) trains one child at
a time. The trainer only ever calls:

* ``rank`` / ``size``: this rank's place in the group;
* ``allreduce_sum(tensor)``: in place, summed over the group (the trainer divides by ``size``
  to average gradients, and piggybacks its per-step status flags on the same buffer so that a
  failure on one rank is known to all ranks before anyone waits in another collective);
* ``broadcast(tensor, root=0)``: in place, from the group's first rank (initial parameters);
* ``barrier()`` and ``shutdown()``.

Implementations: :class:`LocalBackend` (a group of one), :class:`HorovodBackend`
(``hvd.init(comm=group_comm)``), :class:`TorchBackend` (a torch.distributed process group over
the same ranks: gloo on CPU, NCCL on CUDA, rendezvous through a TCP store whose address the
group's first rank broadcasts over the group communicator).
"""
from __future__ import annotations

import socket
from typing import Any, Optional

import torch


class Backend:
    name = "base"
    rank = 0
    size = 1

    def allreduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def broadcast(self, t: torch.Tensor, root: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def barrier(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class LocalBackend(Backend):
    name = "local"

    def allreduce_sum(self, t):
        return t

    def broadcast(self, t, root=0):
        return t


class HorovodBackend(Backend):
    name = "horovod"

    def __init__(self, comm: Any):
        import horovod.torch as hvd
        self.hvd = hvd
        hvd.init(comm=comm)
        self.rank, self.size = hvd.rank(), hvd.size()

    def allreduce_sum(self, t):
        out = self.hvd.allreduce(t, op=self.hvd.Sum, name="nasrun.allreduce")
        t.copy_(out)
        return t

    def broadcast(self, t, root=0):
        self.hvd.broadcast_(t, root_rank=root, name="nasrun.broadcast")
        return t

    def barrier(self):
        self.hvd.allreduce(torch.zeros(1), name="nasrun.barrier")

    def shutdown(self):
        self.hvd.shutdown()


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, comm: Any, device: torch.device, timeout_s: float = 1800.0):
        import datetime

        import torch.distributed as dist
        self.dist = dist
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        addr = None
        if self.rank == 0:
            host = socket.gethostname()
            try:
                ip = socket.gethostbyname(host)
            except OSError:
                ip = "127.0.0.1"
            with socket.socket() as s:  # a free port; the store binds it right after
                s.bind(("", 0))
                port = s.getsockname()[1]
            addr = (ip, port)
        ip, port = comm.bcast(addr, root=0)
        store = dist.TCPStore(ip, port, self.size, self.rank == 0,
                              timeout=datetime.timedelta(seconds=timeout_s))
        pg_backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(pg_backend, store=store, rank=self.rank, world_size=self.size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        self.device = device

    def allreduce_sum(self, t):
        self.dist.all_reduce(t, op=self.dist.ReduceOp.SUM)
        return t

    def broadcast(self, t, root=0):
        self.dist.broadcast(t, src=root)
        return t

    def barrier(self):
        self.dist.barrier()

    def shutdown(self):
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def horovod_available() -> bool:
    try:
        import horovod.torch  # noqa: F401
    except Exception:  # ImportError, or a Horovod built against another torch
        return False
    return True


def make_backend(kind: str, comm: Optional[Any], device: torch.device) -> Backend:
    """``kind`` is the spec's ``resources.backend``: auto (Horovod when importable), horovod, torch."""
    if comm is None or comm.Get_size() == 1:
        return LocalBackend()
    if kind == "horovod" or (kind == "auto" and horovod_available()):
        return HorovodBackend(comm)
    return TorchBackend(comm, device)
