import numpy as np
import pytest
import torch

from nasrun.spec import parse_spec
from nasrun.train.backends import LocalBackend
from nasrun.train.datasets import load_dataset
from nasrun.train.models import build_model
from nasrun.train.trainer import (
    Control,
    Interrupted,
    TrialFailed,
    export_state,
    import_state,
    make_optimizer,
    recipe_for,
    train_trial,
)
from nasrun.trial import Suggestion

CFG = {"num_layers": 1, "layer0_op": "conv3x3", "layer0_width": 8}


def _setup(text, config=CFG, budget=None, trial_id=0):
    spec = parse_spec(text)
    data = load_dataset(spec.objective.dataset, 0)
    torch.manual_seed(0)
    model = build_model("chain", spec.space.options, config, data.input_shape, data.num_classes)
    return Suggestion(trial_id, config, budget), model, data, recipe_for(spec.objective, config, budget, 0)


def test_trains_above_chance_and_reports_metrics(digits_spec_text):
    s, model, data, recipe = _setup(digits_spec_text(epochs=2))
    res = train_trial(s, model, data, recipe, LocalBackend(), torch.device("cpu"))
    m = res.metrics
    assert m["valid_accuracy"] > 0.3  # chance is 0.1
    assert [c["epoch"] for c in res.curve] == [1, 2]
    assert m["params"] > 0 and m["macs"] > m["params"] and m["samples_per_second"] > 0
    assert m["epochs"] == 2


def test_config_hyperparameters_override_recipe(digits_spec_text):
    spec = parse_spec(digits_spec_text())
    r = recipe_for(spec.objective, {"lr": 0.5, "optimizer": "sgd", "momentum": 0.1, "batch_size": 7,
                                    "weight_decay": 0.01}, 3.0, 0)
    assert (r.lr, r.optimizer, r.momentum, r.batch_size, r.weight_decay, r.epochs) == \
        (0.5, "sgd", 0.1, 7, 0.01, 3)
    assert isinstance(make_optimizer(r, [torch.nn.Parameter(torch.zeros(1))]), torch.optim.SGD)


def test_nan_loss_fails_the_trial(digits_spec_text):
    s, model, data, recipe = _setup(digits_spec_text())
    with pytest.raises(TrialFailed, match="non-finite training loss"):
        train_trial(s, model, data, recipe, LocalBackend(), torch.device("cpu"),
                    control=Control(inject={"kind": "nan", "rank": 0}))


def test_exception_carries_traceback(digits_spec_text):
    s, model, data, recipe = _setup(digits_spec_text())
    with pytest.raises(TrialFailed, match=r"(?s)Traceback.*injected failure"):
        train_trial(s, model, data, recipe, LocalBackend(), torch.device("cpu"),
                    control=Control(inject={"kind": "raise", "rank": 0}))


def test_time_limit(digits_spec_text):
    import time
    s, model, data, recipe = _setup(digits_spec_text(epochs=3))
    with pytest.raises(TrialFailed, match="time limit exceeded"):
        train_trial(s, model, data, recipe, LocalBackend(), torch.device("cpu"),
                    control=Control(deadline=time.monotonic() - 1))


def test_state_roundtrip_and_continue(digits_spec_text):
    text = digits_spec_text(epochs=2)
    s, model, data, recipe = _setup(text)
    sent = []
    res = train_trial(s, model, data, recipe, LocalBackend(), torch.device("cpu"),
                      control=Control(save_state=sent.append, every_seconds=0.0), keep_state=True)
    assert [st.epoch for st in sent] == [1]  # the last epoch's state comes with the result
    assert res.state.epoch == 2 and any(k.startswith("optim/") for k in res.state.tensors)
    assert all(isinstance(v, np.ndarray) for v in res.state.tensors.values())
    import json
    json.dumps(res.state.meta)  # plain data only
    # continue from epoch 1's state: trains only epoch 2, keeps the curve of epoch 1
    s2, model2, data2, recipe2 = _setup(text)
    res2 = train_trial(s2, model2, data2, recipe2, LocalBackend(), torch.device("cpu"),
                       init_state=sent[0])
    assert [c["epoch"] for c in res2.curve] == [1, 2]
    assert res2.curve[0] == sent[0].meta["curve"][0]
    # import_state restores exactly what export_state saved
    opt = make_optimizer(recipe2, model2.parameters())
    import_state(res.state, model2, opt, torch.device("cpu"))
    again = export_state(0, 2, model2, opt, {})
    for k, v in res.state.tensors.items():
        assert np.array_equal(again.tensors[k], v), k


def test_flush_request_sends_last_epoch_state_and_interrupts(digits_spec_text):
    s, model, data, recipe = _setup(digits_spec_text(epochs=3))
    sent, calls = [], []

    def flush():
        calls.append(1)
        return len(calls) > 30  # some steps into epoch 2 (digits: 21 steps per epoch)

    with pytest.raises(Interrupted):
        train_trial(s, model, data, recipe, LocalBackend(), torch.device("cpu"),
                    control=Control(flush_requested=flush, save_state=sent.append,
                                    every_seconds=1e9))
    assert [st.epoch for st in sent] == [1]
