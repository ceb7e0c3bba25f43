"""CUDA: device selection everywhere; training on a GPU where one exists (CI has none: the
CUDA-only tests are skipped there, the device-selection checks run on every machine)."""
import os

import pytest
import torch
from conftest import mpi_env, mpirun

from nasrun.errors import UserInputError
from nasrun.runtime.roles import pick_device
from nasrun.spec import parse_spec
from nasrun.train.backends import LocalBackend
from nasrun.train.datasets import load_dataset
from nasrun.train.models import build_model
from nasrun.train.trainer import recipe_for, train_trial
from nasrun.trial import Suggestion

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")


def test_device_choice():
    assert pick_device("cpu", 0) == torch.device("cpu")
    if HAS_CUDA:
        assert pick_device("auto", 0).type == "cuda"
        assert pick_device("cuda", 3).index == 3 % torch.cuda.device_count()  # local rank -> its GPU
    else:
        assert pick_device("auto", 0) == torch.device("cpu")
        with pytest.raises(UserInputError, match="CUDA is not available"):
            pick_device("cuda", 0)


@needs_cuda
def test_training_on_cuda_matches_the_cpu_protocol(digits_spec_text):
    spec = parse_spec(digits_spec_text(epochs=2))
    data = load_dataset(spec.objective.dataset, 0)
    cfg = {"num_layers": 1, "layer0_op": "conv3x3", "layer0_width": 16}
    torch.manual_seed(0)
    model = build_model("chain", spec.space.options, cfg, data.input_shape, data.num_classes)
    res = train_trial(Suggestion(0, cfg), model, data, recipe_for(spec.objective, cfg, None, 0),
                      LocalBackend(), torch.device("cuda", 0))
    assert next(model.parameters()).is_cuda
    assert res.metrics["valid_accuracy"] > 0.3 and res.metrics["samples_per_second"] > 0


@needs_cuda
def test_mpirun_on_cuda(tmp_path, digits_spec_text):
    text = digits_spec_text(trials=4, epochs=2).replace("ranks_per_trial: 1",
                                                        "ranks_per_trial: 1, device: cuda")
    (tmp_path / "spec.yaml").write_text(text)
    entry = os.path.join(os.path.dirname(__file__), "mpi_entry.py")
    p = mpirun(3, [entry, str(tmp_path / "spec.yaml"), str(tmp_path / "store.json")], env=mpi_env(),
               cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("valid_accuracy") >= 4
