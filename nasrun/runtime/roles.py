"""Roles in an MPI job: rank 0 is the master; the other ranks form worker groups.

Ranks 1..N-1 are split (``COMM_WORLD.Split``) into ``(N - 1) // ranks_per_trial`` groups of
``ranks_per_trial`` consecutive ranks; group ``g``'s first rank (``1 + g * ranks_per_trial``) is
its leader, the only rank that talks to rank 0. Ranks left over are idle (rank 0 warns).
Each worker rank pins one local GPU when CUDA is used: its index among the worker ranks of its
node (from the shared-memory split) modulo the node's GPU count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class Role:
    world_rank: int
    world_size: int
    group: Optional[int]  # None for rank 0 and idle ranks
    group_comm: Any  # the group's communicator (None for rank 0 and idle ranks)
    groups: int
    ranks_per_trial: int
    local_rank: int  # among the worker ranks on this node

    @property
    def is_master(self) -> bool:
        return self.world_rank == 0

    @property
    def is_leader(self) -> bool:
        return self.group_comm is not None and self.group_comm.Get_rank() == 0

    def leader_of(self, group: int) -> int:
        return 1 + group * self.ranks_per_trial


def split_roles(world: Any, ranks_per_trial: int) -> Role:
    from mpi4py import MPI
    rank, size = world.Get_rank(), world.Get_size()
    groups = (size - 1) // ranks_per_trial
    group = (rank - 1) // ranks_per_trial if 0 < rank <= groups * ranks_per_trial else None
    comm = world.Split(group if group is not None else MPI.UNDEFINED, rank)
    node = world.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
    workers_here = node.Split(1 if group is not None else 0, rank)
    local = workers_here.Get_rank()
    workers_here.Free()
    node.Free()
    return Role(rank, size, group, comm if comm != MPI.COMM_NULL else None, groups, ranks_per_trial,
                local)


def pick_device(kind: str, local_rank: int) -> torch.device:
    """``resources.device``: auto (CUDA when available), cpu or cuda."""
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        from ..errors import UserInputError
        raise UserInputError("resources.device is 'cuda' but CUDA is not available on this node")
    idx = local_rank % torch.cuda.device_count()
    torch.cuda.set_device(idx)
    return torch.device("cuda", idx)
