"""``objective.type: train``: build the child network of a configuration and train it on the group."""
from __future__ import annotations

import traceback
from dataclasses import replace

import torch

from ..errors import UserInputError
from ..train.datasets import load_dataset
from ..train.models import build_model
from ..train.trainer import TrialFailed, recipe_for, train_trial
from ..trial import DONE, Outcome
from . import Objective, TrialContext, TrialResult


class TrainObjective(Objective):
    distributed = True

    def __init__(self, spec):
        self.spec = spec

    def prepare(self) -> None:
        try:
            load_dataset(self.spec.objective.dataset, self.spec.experiment.seed)
        except UserInputError:
            raise  # the data set is missing or wrong on this node: every trial would fail
        except Exception:  # noqa: BLE001 - reported by the first trial, with its traceback
            pass

    def run(self, ctx: TrialContext) -> TrialResult:
        spec, s = self.spec, ctx.suggestion
        err, model, data = None, None, None
        try:
            data = load_dataset(spec.objective.dataset, spec.experiment.seed)
            torch.manual_seed(spec.experiment.seed * 7919 + s.trial_id)
            model = build_model(spec.space.builtin, spec.space.options, s.config, data.input_shape,
                                data.num_classes, spec.objective.options)
            recipe = recipe_for(spec.objective, s.config, s.budget, spec.experiment.seed)
        except Exception as e:  # noqa: BLE001
            err = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        agree_setup(ctx, err)
        assert model is not None and data is not None  # agree_setup raised when a rank's setup failed
        res = train_trial(s, model, data, recipe, ctx.backend, ctx.device, ctx.comm, ctx.state,
                          ctx.control, ctx.keep_state)
        state = res.state
        if state is not None:  # what `nasrun export` needs to rebuild the network
            state = replace(state, meta={**state.meta, "input_shape": list(data.input_shape),
                                         "num_classes": int(data.num_classes)})
        return TrialResult(Outcome(s.trial_id, DONE, res.metrics, tuple(res.curve),
                                   stopped_at=res.stopped_at), state, res.digest)


def agree_setup(ctx: TrialContext, err) -> None:
    """Every rank learns whether any rank failed to set the trial up, before any collective."""
    b = ctx.backend
    flag = torch.tensor([1.0 if err else 0.0], device=ctx.device)
    if b is not None and b.size > 1:
        b.allreduce_sum(flag)
    if flag.item() == 0:
        return
    errors = ctx.comm.gather(err, root=0) if ctx.comm is not None and b.size > 1 else [err]
    if b is None or b.rank == 0:
        raise TrialFailed("\n".join(e for e in errors if e))
    raise TrialFailed("failed on another rank")
