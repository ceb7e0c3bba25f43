"""Train one child network data-parallel over a worker group, and measure it.

Every rank of the group calls :func:`train_trial` with the same suggestion. Each step, a rank
computes the loss on its shard of the batch; the gradients of all parameters are flattened into
one buffer, followed by three status flags (this rank failed / the group's time limit passed /
rank 0 asked for the in-flight state), and the buffer is summed over the group in one
collective. So every rank learns about a failure on any other rank in the same collective that
averages the gradients, and all ranks leave the step loop together: nobody waits forever in an
allreduce that a failed rank will never join. The failing rank's traceback is gathered to the
group's first rank, which reports it.

Hyperparameters read from the configuration (they override the spec's ``objective`` recipe):
``lr``, ``optimizer`` (sgd/adam/adamw), ``momentum`` (sgd), ``weight_decay`` and
``batch_size`` (the global batch over the group; each rank takes ``ceil(batch_size / size)``).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..store.base import ModelState
from ..trial import Suggestion
from .backends import Backend
from .datasets import Data
from .models import count_macs, count_params

HYPERPARAMETERS = ("lr", "optimizer", "momentum", "weight_decay", "batch_size")
ERR, TIMEOUT, FLUSH, STOP = 0, 1, 2, 3


class TrialFailed(Exception):
    """The group agreed that the trial failed; the message holds the error(s) and traceback(s)."""


class Interrupted(Exception):
    """Rank 0 asked for the in-flight state (a signal): training stopped at an epoch boundary."""


@dataclass
class Recipe:
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    seed: int


def recipe_for(objective, config: Mapping[str, Any], budget: Optional[float], seed: int) -> Recipe:
    o = objective.optimizer
    epochs = int(round(budget)) if budget is not None else objective.epochs
    return Recipe(max(1, epochs), int(config.get("batch_size", objective.batch_size)),
                  str(config.get("optimizer", o.name)), float(config.get("lr", o.lr)),
                  float(config.get("momentum", o.momentum)),
                  float(config.get("weight_decay", o.weight_decay)), seed)


def make_optimizer(r: Recipe, params) -> torch.optim.Optimizer:
    if r.optimizer == "sgd":
        return torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    if r.optimizer == "adam":
        return torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay)
    raise ValueError(f"unknown optimizer {r.optimizer!r} (sgd, adam or adamw)")


# -- state <-> numpy/JSON -----------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.item()
    return v


def export_state(trial_id: int, epoch: int, model: nn.Module, opt: torch.optim.Optimizer,
                 meta: Mapping[str, Any]) -> ModelState:
    tensors = {f"model/{k}": v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    opt_meta: Dict[str, Dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                tensors[f"optim/{idx}/{k}"] = v.detach().cpu().numpy().copy()
            else:
                opt_meta.setdefault(str(idx), {})[k] = _plain(v)
    groups = [{k: _plain(v) for k, v in g.items()} for g in sd["param_groups"]]
    return ModelState(trial_id, epoch, tensors,
                      {**meta, "optimizer_state": opt_meta, "param_groups": groups})


def import_state(state: ModelState, model: nn.Module, opt: Optional[torch.optim.Optimizer],
                 device: torch.device) -> None:
    msd = {k[len("model/"):]: torch.from_numpy(np.asarray(v)) for k, v in state.tensors.items()
           if k.startswith("model/")}
    model.load_state_dict(msd)
    if opt is None:
        return
    st: Dict[int, Dict[str, Any]] = {}
    for k, v in state.tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/", 2)
            st.setdefault(int(idx), {})[name] = torch.from_numpy(np.asarray(v)).to(device)
    for idx, d in (state.meta.get("optimizer_state") or {}).items():
        for name, v in d.items():
            st.setdefault(int(idx), {})[name] = torch.tensor(v) if name == "step" else v
    groups = opt.state_dict()["param_groups"]
    saved = state.meta.get("param_groups") or []
    if len(saved) == len(groups):  # keep this trial's hyperparameters, restore the rest
        groups = [{**s, **{k: g[k] for k in ("lr", "momentum", "weight_decay") if k in g},
                   "params": g["params"]} for s, g in zip(saved, groups)]
    opt.load_state_dict({"state": st, "param_groups": groups})


def params_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# -- the training loop --------------------------------------------------------------------------------
@dataclass
class Control:
    """How the trainer talks to the outside (only the group's first rank uses these)."""

    # called between steps: True when rank 0 asks for the in-flight state (a signal); it also
    # reports the background state writes that have finished (so rank 0 learns of a written
    # state within a step, not at the next checkpoint)
    flush_requested: Callable[[], bool] = lambda: False
    poll: Callable[[], None] = lambda: None  # report finished background writes only
    save_state: Callable[[ModelState], None] = lambda st: None  # written in the background
    # after each epoch, when set: (epoch, metrics) -> True to stop the trial early (a stopper)
    report_epoch: Optional[Callable[[int, Dict[str, float]], bool]] = None
    # called between steps: True when a stopper's answer to an earlier report says stop (the
    # trial then ends at its last finished epoch; polled, never waits)
    stop_requested: Callable[[], bool] = lambda: False
    every_epochs: int = 1
    every_seconds: float = 60.0
    deadline: Optional[float] = None  # time.monotonic() value after which the trial fails
    inject: Mapping[str, Any] = field(default_factory=dict)  # test hooks, see worker docstring


@dataclass
class TrainResult:
    metrics: Dict[str, float]
    curve: List[Dict[str, float]]
    state: Optional[ModelState]
    digest: str
    stopped_at: Optional[int] = None  # the epoch after which a stopper ended training


class _Step:
    """One collective per step: flat gradients + status flags, summed over the group."""

    def __init__(self, backend: Backend, params: List[nn.Parameter], device: torch.device):
        self.backend, self.params, self.device = backend, params, device
        self.n = sum(p.numel() for p in params)

    def sync(self, flags: List[float], with_grads: bool) -> Tuple[Optional[torch.Tensor], List[float]]:
        if self.backend.size == 1:  # nothing to agree on: the gradients are already in place
            return None, list(flags)
        parts = []
        if with_grads:
            for p in self.params:
                parts.append(p.grad.reshape(-1) if p.grad is not None and flags[ERR] == 0
                             else torch.zeros(p.numel(), device=self.device))
        parts.append(torch.tensor(flags, dtype=torch.float32, device=self.device))
        buf = torch.cat([x.float() for x in parts])
        if self.backend.size > 1:
            self.backend.allreduce_sum(buf)
        status = buf[-len(flags):].tolist()
        if with_grads and not any(status):
            off = 0
            for p in self.params:
                g = buf[off:off + p.numel()].view_as(p) / self.backend.size
                if p.grad is None:
                    p.grad = g.clone()
                else:
                    p.grad.copy_(g)
                off += p.numel()
        return buf, status


def _agree_failure(status: List[float], local_error: Optional[str], comm: Any, rank: int,
                   leader_note: str = "") -> None:
    """Raise the agreed outcome of a step whose status flags are not all zero (on every rank)."""
    if status[ERR]:
        errors = comm.gather(local_error, root=0) if comm is not None and comm.Get_size() > 1 \
            else [local_error]
        if rank == 0:
            msgs = [f"[group rank {r}] {e}" if len(errors) > 1 else str(e)
                    for r, e in enumerate(errors) if e]
            raise TrialFailed("\n".join(msgs) or "a rank of the group failed")
        raise TrialFailed("failed on another rank")
    if status[TIMEOUT]:
        raise TrialFailed(f"time limit exceeded{leader_note}")
    raise Interrupted()


def _shard(n: int, rank: int, size: int, gen: Optional[torch.Generator]) -> torch.Tensor:
    idx = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    per = math.ceil(n / size)
    idx = torch.cat([idx, idx[: per * size - n]]) if per * size > n else idx
    return idx[rank::size]


def train_trial(suggestion: Suggestion, model: nn.Module, data: Data, recipe: Recipe,
                backend: Backend, device: torch.device, comm: Any = None,
                init_state: Optional[ModelState] = None, control: Optional[Control] = None,
                keep_state: bool = False, time_limit_note: str = "") -> TrainResult:
    """Train ``model`` for ``recipe.epochs`` epochs (continuing from ``init_state``'s epoch)."""
    control = control or Control()
    rank, size = backend.rank, backend.size
    leader = rank == 0
    model.to(device)
    opt = make_optimizer(recipe, model.parameters())
    curve: List[Dict[str, float]] = []
    start_epoch, train_seconds = 0, 0.0
    if init_state is not None:
        import_state(init_state, model, opt, device)
        start_epoch = int(init_state.epoch)
        curve = [dict(c) for c in init_state.meta.get("curve", [])]
        train_seconds = float(init_state.meta.get("train_seconds", 0.0))
    params = list(model.parameters())
    if size > 1:
        for t in list(model.state_dict().values()):
            if t.dtype.is_floating_point:
                backend.broadcast(t.data if isinstance(t, nn.Parameter) else t, 0)
    stepper = _Step(backend, params, device)
    loss_fn = nn.CrossEntropyLoss()
    local_bs = max(1, math.ceil(recipe.batch_size / size))
    x_tr, y_tr = data.x_train.to(device), data.y_train.to(device)
    inject = control.inject
    samples = 0
    last_sent, last_sent_epoch = -math.inf, start_epoch
    state: Optional[ModelState] = None
    stopped_at: Optional[int] = None
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(recipe.seed * 1_000_003 + suggestion.trial_id * 1009 + epoch)
        idx = _shard(len(y_tr), rank, size, gen).to(device)
        loss_sum, seen = 0.0, 0
        stop_now = False
        for b in range(0, len(idx), local_bs):
            bi = idx[b:b + local_bs]
            flags, err = [0.0, 0.0, 0.0, 0.0], None
            try:
                opt.zero_grad(set_to_none=False)
                if inject.get("rank", 0) == rank and inject.get("kind") == "raise":
                    raise RuntimeError(f"injected failure in trial {suggestion.trial_id}")
                loss = loss_fn(model(x_tr[bi]), y_tr[bi])
                if inject.get("rank", 0) == rank and inject.get("kind") == "nan":
                    loss = loss * float("nan")
                if inject.get("rank", 0) == rank and inject.get("kind") == "slow":
                    time.sleep(1.0)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss ({loss.item()}) in epoch "
                                             f"{epoch + 1}")
                loss.backward()
            except Exception as e:  # noqa: BLE001 - any error fails the trial, agreed below
                flags[ERR] = 1.0
                err = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if leader:
                if control.deadline is not None and time.monotonic() > control.deadline:
                    flags[TIMEOUT] = 1.0
                if control.flush_requested():
                    flags[FLUSH] = 1.0
                if state is not None and control.stop_requested():  # after an epoch of this run
                    flags[STOP] = 1.0
            _, status = stepper.sync(flags, with_grads=True)
            if any(status[:STOP]):
                if status[FLUSH] and not status[ERR] and not status[TIMEOUT] and leader:
                    if state is not None and state.epoch > last_sent_epoch:
                        control.save_state(state)
                _agree_failure(status, err, comm, rank, time_limit_note)
            if status[STOP]:  # every rank: end at the last finished epoch, this one is dropped
                stop_now = True
                break
            opt.step()
            loss_sum += float(loss.detach()) * len(bi)
            seen += len(bi)
            samples += len(bi)
        if stop_now:
            stopped_at = epoch
            break
        if size > 1:  # BatchNorm running statistics: average so every rank holds the same model
            for t in model.buffers():
                if t.dtype.is_floating_point:
                    backend.allreduce_sum(t)
                    t.div_(size)
        v_loss, v_acc, status, err = _evaluate(model, data, backend, device, local_bs, comm)
        train_loss = _mean_over_group(backend, loss_sum, seen, device)
        dt = time.perf_counter() - t0
        train_seconds += dt
        curve.append({"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": v_loss,
                      "valid_accuracy": v_acc, "seconds": dt})
        if leader and control.deadline is not None and time.monotonic() > control.deadline:
            status[TIMEOUT] = 1.0
        status.append(0.0)  # STOP: a stopper ends the trial after this epoch
        if leader and control.report_epoch is not None and not status[ERR] and epoch + 1 < recipe.epochs:
            if control.report_epoch(epoch + 1, dict(curve[-1])):
                status[STOP] = 1.0
        if size > 1:
            flags_t = torch.tensor(status, device=device)
            backend.allreduce_sum(flags_t)
            status = flags_t.tolist()
        if status[ERR] or status[TIMEOUT]:
            _agree_failure(status, err, comm, rank, time_limit_note)
        if not math.isfinite(v_loss):
            raise TrialFailed(f"non-finite validation loss in epoch {epoch + 1}")
        if leader:
            meta = {"curve": [dict(c) for c in curve], "train_seconds": train_seconds}
            state = export_state(suggestion.trial_id, epoch + 1, model, opt, meta)
            now = time.monotonic()
            due = (epoch + 1) % control.every_epochs == 0 and now - last_sent >= control.every_seconds
            if due and epoch + 1 < recipe.epochs and not status[STOP]:
                control.save_state(state)
                last_sent, last_sent_epoch = now, epoch + 1
        if status[STOP]:
            stopped_at = epoch + 1
            break
    final = curve[-1] if curve else {}
    shape = data.input_shape
    metrics = {"valid_accuracy": final.get("valid_accuracy", float("nan")),
               "valid_loss": final.get("valid_loss", float("nan")),
               "train_loss": final.get("train_loss", float("nan")),
               "params": float(count_params(model)), "macs": float(count_macs(model, shape)),
               "epochs": float(stopped_at or recipe.epochs), "train_seconds": train_seconds,
               "samples_per_second": samples * size / max(1e-9, sum(
                   c["seconds"] for c in curve[start_epoch:]))}
    if leader and keep_state and state is None:
        state = export_state(suggestion.trial_id, stopped_at or recipe.epochs, model, opt,
                             {"curve": [dict(c) for c in curve], "train_seconds": train_seconds})
    return TrainResult(metrics, curve, state if (leader and keep_state) else None,
                       params_digest(model), stopped_at)


def _mean_over_group(backend: Backend, total: float, count: int, device) -> float:
    t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    if backend.size > 1:
        backend.allreduce_sum(t)
    return float(t[0]) / max(float(t[1]), 1.0)


def _evaluate(model, data: Data, backend: Backend, device, bs: int,
              comm) -> Tuple[float, float, List[float], Optional[str]]:
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    idx = torch.arange(backend.rank, len(data.y_valid), backend.size)
    loss_sum, correct, err = 0.0, 0.0, None
    try:
        with torch.no_grad():
            for b in range(0, len(idx), max(bs, 256)):
                bi = idx[b:b + max(bs, 256)]
                x, y = data.x_valid[bi].to(device), data.y_valid[bi].to(device)
                out = model(x)
                loss_sum += float(loss_fn(out, y))
                correct += float((out.argmax(1) == y).sum())
    except Exception as e:  # noqa: BLE001
        err = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    t = torch.tensor([loss_sum, correct, float(len(idx)), 1.0 if err else 0.0], dtype=torch.float64,
                     device=device)
    if backend.size > 1:
        backend.allreduce_sum(t)
    n = max(float(t[2]), 1.0)
    return float(t[0]) / n, float(t[1]) / n, [float(t[3] > 0), 0.0, 0.0], err


def hash_dir() -> Optional[str]:
    """Test hook: ``NASRUN_DEBUG_DIGEST_DIR`` makes every rank write its final parameters' digest."""
    return os.environ.get("NASRUN_DEBUG_DIGEST_DIR") or None
