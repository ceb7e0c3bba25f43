"""Export a trial's architecture as a standalone PyTorch module (``nasrun export``).

The output directory::

    model.py             needs only torch: the source of nasrun/train/models.py, copied verbatim
                         (one implementation of the networks), then the trial's CONFIG and
                         build() (untrained network) / load() (trained, eval mode)
    weights.safetensors  the trained weights (state_dict tensors), when the store kept them
    weights.pt           the same state_dict for torch.load(..., weights_only=True)
    recipe.json          how it was trained: config, dataset and split, preprocessing, epochs,
                         batch size, optimizer, lr..., the trial's metrics, the retrain command
    train.py             retrains the architecture from scratch with that recipe (torch + numpy)
    README.md            the above in words

Weights exist for the trials whose final state the run kept (``checkpoint.keep_best``, default 3:
the best finished trials by the main objective; in-flight trials are never exported). A table
objective trains nothing: only the architecture and recipe are written.
"""
from __future__ import annotations

import inspect
import json
import os
import pprint
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import UserInputError

MACRO_KEYS = ("stem_width", "nb201_channels", "nb201_cells")
SHAPES = {"digits": ((1, 8, 8), 10), "cifar10": ((3, 32, 32), 10)}
PREPROCESS = {
    "digits": "scikit-learn's load_digits images / 16.0 as float32, shape (N, 1, 8, 8)",
    "cifar10": "CIFAR-10 pixels / 255, then per channel (x - mean) / std with mean (0.4914, 0.4822, "
               "0.4465) and std (0.2470, 0.2435, 0.2616), shape (N, 3, 32, 32)",
    "file": "the file's x array as float32; (N, H, W) gets a channel axis: (N, 1, H, W)",
}


@dataclass
class Exported:
    trial_id: int
    out: str
    files: List[str]
    weights: bool
    metric: str
    value: Optional[float]
    warnings: List[str] = field(default_factory=list)


class _Stored:
    """What export reads of an experiment: its trials and the final model states kept."""

    def __init__(self, store, loaded):
        self.trials = loaded.state.all_records()
        self.spec_text = loaded.spec_text
        self._store, self._refs = store, loaded.state.refs
        self.models = self

    def get(self, trial_id: int):
        from .store.states import StateError
        refs = self._refs.get(trial_id) or []
        if not refs:
            return None
        try:
            return self._store.states.read(refs[-1])
        except StateError as e:
            raise UserInputError(f"the final weights of trial {trial_id} cannot be read: {e}") from None


def load_experiment(path: str):
    """(stored experiment, spec, store warnings) of the experiment at ``path``, or a UserInputError."""
    from .errors import CheckpointError
    from .spec import parse_spec
    from .store import open_store
    if not os.path.exists(path):
        raise UserInputError(f"{path}: no such file or directory")
    import h5py
    if os.path.isfile(path) and not h5py.is_hdf5(path):
        raise UserInputError(f"{path}: not a nasrun experiment (not an HDF5 file; give an experiment "
                             "directory or its experiment.h5)")
    store = open_store(path)
    caught: List[str] = []
    store.on_warning = caught.append
    try:
        loaded = store.load()
    except CheckpointError as e:  # the run's hint to start afresh does not apply here
        raise UserInputError(str(e).replace("\nremove or move these files to start afresh", "")) from None
    if loaded is None:
        raise UserInputError(f"{path}: not a nasrun experiment (no experiment.h5 here; give an "
                             "experiment directory or its experiment.h5)")
    spec = parse_spec(loaded.spec_text, f"{store.path} (stored spec)")
    return _Stored(store, loaded), spec, caught


def choose_trial(snap, spec, path: str, trial: Optional[int]):
    """The TrialRecord to export: ``trial`` or the best finished (feasible) one."""
    from .store import DONE, FAILED
    records = {r.trial_id: r for r in snap.trials}
    if trial is not None:
        if trial not in records:
            known = f"trials {min(records)}..{max(records)}" if records else "no trials yet"
            raise UserInputError(f"{path}: no trial {trial} in this experiment ({known})")
        r = records[trial]
        if r.status == FAILED:
            last = ((r.outcome.error if r.outcome else "") or "").strip().splitlines()
            raise UserInputError(f"{path}: trial {trial} failed ({last[-1] if last else 'no message'}); "
                                 "export a finished trial (see nasrun status) or use --best")
        if r.status != DONE:
            raise UserInputError(f"{path}: trial {trial} has not finished (status {r.status}); only "
                                 "finished trials can be exported")
        return r
    done = [r for r in snap.trials if r.status == DONE and r.outcome is not None]
    if not done:
        n_failed = sum(r.status == FAILED for r in snap.trials)
        raise UserInputError(f"{path}: no finished trial to export ({len(snap.trials)} trials, "
                             f"{n_failed} failed)")
    from .view import ExperimentView
    best = ExperimentView.from_spec(spec).best(done)
    if best is None:
        why = " meets the constraints" if spec.objective.constraints else f" has a {spec.objective.metric}"
        raise UserInputError(f"{path}: no finished trial{why}; choose one with --trial ID")
    return best


def _shape(spec, state) -> Tuple[Tuple[int, ...], int]:
    if state is not None and "input_shape" in state.meta:
        return tuple(int(d) for d in state.meta["input_shape"]), int(state.meta["num_classes"])
    o = spec.objective
    if o.type == "table":
        return SHAPES["cifar10"]
    if o.dataset.name in SHAPES:
        return SHAPES[o.dataset.name]
    from .train.datasets import load_file_arrays
    x, y = load_file_arrays(o.dataset.path, o.dataset.x_key, o.dataset.y_key)
    return tuple(x.shape[1:]), int(y.max()) + 1


def _macro(spec) -> Dict[str, Any]:
    opts = {k: v for k, v in spec.objective.options.items() if k in MACRO_KEYS}
    if spec.objective.type == "table":  # the benchmark's network: 16 channels, 5 cells per stage
        opts.setdefault("nb201_channels", 16)
        opts.setdefault("nb201_cells", 5)
    return opts


def _weights(spec, record, snap) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(state_dict numpy arrays, None) or (None, why they are not available)."""
    if spec.objective.type != "train":
        return None, f"objective.type is {spec.objective.type!r}: no network was trained"
    ms = snap.models.get(record.trial_id)
    want = int(record.outcome.metrics.get("epochs", 0)) if record.outcome else 0
    if ms is None:
        k = spec.checkpoint.keep_best
        return None, (f"the checkpoint does not hold trial {record.trial_id}'s final weights (runs keep "
                      f"those of the checkpoint.keep_best={k} best finished trials)")
    if want and int(ms.epoch) != want:
        return None, (f"the stored state of trial {record.trial_id} is from epoch {ms.epoch}, "
                      f"not its final epoch {want}")
    sd = {k[len("model/"):]: v for k, v in ms.tensors.items() if k.startswith("model/")}
    if not sd:
        return None, f"the stored state of trial {record.trial_id} has no model tensors"
    return sd, None


def model_source(spec, config, input_shape, num_classes, trial_id: int) -> str:
    from .train import models
    src = inspect.getsource(models)
    fmt = lambda v: pprint.pformat(v, width=100, sort_dicts=True)  # noqa: E731
    head = (f"# Generated by `nasrun export`: trial {trial_id} of experiment {spec.experiment.name!r}.\n"
            "# Needs only torch. The network code below is nasrun/train/models.py, verbatim; the\n"
            "# trial's configuration and build()/load() follow it.\n")
    tail = f'''

# -- the exported trial ---------------------------------------------------------------------------
TRIAL_ID = {trial_id}
SPACE = {spec.space.builtin!r}
SPACE_OPTIONS = {fmt(dict(spec.space.options))}
MACRO_OPTIONS = {fmt(_macro(spec))}
CONFIG = {fmt(dict(config))}
INPUT_SHAPE = {tuple(int(d) for d in input_shape)!r}
NUM_CLASSES = {int(num_classes)}


def build() -> nn.Module:
    """The trial's network, untrained (inputs of shape (batch,) + INPUT_SHAPE, logits out)."""
    return build_model(SPACE, SPACE_OPTIONS, CONFIG, INPUT_SHAPE, NUM_CLASSES, MACRO_OPTIONS)


def load(weights: str = "") -> nn.Module:
    """The trained network in eval mode, from ``weights`` (default: weights.pt next to this file)."""
    import os
    path = weights or os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.pt")
    model = build()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
'''
    return head + src + tail


TRAIN_PY = '''"""Retrain the exported architecture from scratch with the search's recipe (torch + numpy).

    python train.py --data DATA.npz [--epochs N] [--out retrained.pt]

DATA.npz holds ``x`` (samples, preprocessed as recipe.json's dataset.preprocessing says) and
``y`` (integer labels). The train/validation split is nasrun's: the samples are permuted with
numpy.random.default_rng(seed) and the first round(valid_fraction * N) are the validation set.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as exported  # noqa: E402


def main():
    recipe = json.load(open(os.path.join(HERE, "recipe.json")))
    t, ds = recipe["training"], recipe["dataset"]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=t["epochs"])
    ap.add_argument("--out", default="retrained.pt")
    a = ap.parse_args()
    with np.load(a.data, allow_pickle=False) as f:
        x, y = f["x"].astype(np.float32), f["y"].astype(np.int64)
    if ds.get("limit"):
        x, y = x[:ds["limit"]], y[:ds["limit"]]
    n_valid = int(round(ds["valid_fraction"] * len(y)))
    perm = np.random.default_rng(ds["seed"]).permutation(len(y))
    xv, yv = torch.from_numpy(x[perm[:n_valid]]), torch.from_numpy(y[perm[:n_valid]])
    xt, yt = torch.from_numpy(x[perm[n_valid:]]), torch.from_numpy(y[perm[n_valid:]])
    torch.manual_seed(ds["seed"])
    model = exported.build()
    kw = {"lr": t["lr"], "weight_decay": t["weight_decay"]}
    opt = {"sgd": lambda p: torch.optim.SGD(p, momentum=t["momentum"], **kw),
           "adam": lambda p: torch.optim.Adam(p, **kw),
           "adamw": lambda p: torch.optim.AdamW(p, **kw)}[t["optimizer"]](model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(yt))
        for b in range(0, len(yt), t["batch_size"]):
            i = order[b:b + t["batch_size"]]
            opt.zero_grad()
            loss_fn(model(xt[i]), yt[i]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xv).argmax(1) == yv).float().mean().item()
        print(f"epoch {epoch + 1}/{a.epochs}: valid_accuracy {acc:.4f}", flush=True)
    torch.save(model.state_dict(), a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
'''


def _recipe(spec, record, input_shape, num_classes, weights_note, state_epoch) -> Dict[str, Any]:
    from . import __version__
    from .train.trainer import recipe_for
    o = spec.objective
    r = recipe_for(o, record.suggestion.config, record.suggestion.budget, spec.experiment.seed)
    ds = o.dataset
    name = "cifar10" if o.type == "table" else ds.name
    retrain = ("python train.py --data DATA.npz  # DATA.npz: arrays x, y (see dataset.preprocessing)")
    if name == "digits":
        retrain = ("python -c \"from sklearn.datasets import load_digits; import numpy as np; "
                   "d = load_digits(); "
                   "np.savez('digits.npz', x=(d.images / 16.0).astype('float32')[:, None], y=d.target)\" "
                   "&& python train.py --data digits.npz")
    return {
        "nasrun_version": __version__,
        "experiment": spec.experiment.name,
        "trial_id": record.trial_id,
        "config": dict(record.suggestion.config),
        "space": {"builtin": spec.space.builtin, "options": dict(spec.space.options)},
        "macro_options": _macro(spec),
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "dataset": {"name": name, "path": ds.path if name in ("file", "cifar10") else None,
                    "x_key": ds.x_key, "y_key": ds.y_key, "valid_fraction": ds.valid_fraction,
                    "limit": ds.limit, "seed": spec.experiment.seed, "preprocessing": PREPROCESS[name]},
        "training": {"epochs": r.epochs, "batch_size": r.batch_size, "optimizer": r.optimizer, "lr": r.lr,
                     "momentum": r.momentum, "weight_decay": r.weight_decay,
                     "loss": "cross-entropy", "note": "batch_size is the global batch of the search's group"},
        "objective": {"type": o.type, "metric": o.metric, "mode": o.mode,
                      "objectives": [{"metric": t.metric, "mode": t.mode} for t in o.objectives],
                      "constraints": [{"metric": c.metric, "min": c.min, "max": c.max}
                                      for c in o.constraints]},
        "metrics": dict(record.outcome.metrics) if record.outcome else {},
        "weights": {"available": weights_note is None, "epoch": state_epoch,
                    "files": ["weights.safetensors", "weights.pt"] if weights_note is None else [],
                    "note": weights_note},
        "retrain_command": retrain,
    }


def _readme(rec: Dict[str, Any]) -> str:
    t, w = rec["training"], rec["weights"]
    m = rec["metrics"]
    metric = rec["objective"]["metric"]
    val = m.get(metric)
    lines = [
        f"# Trial {rec['trial_id']} of nasrun experiment `{rec['experiment']}`",
        "",
        f"{rec['space']['builtin']} architecture, {metric} = {val if val is None else f'{val:.4f}'} "
        f"({int(m.get('params', 0))} parameters, {int(m.get('macs', 0))} MACs per sample).",
        "",
        "## Use",
        "",
        "```python",
        "import model                 # needs only torch",
        "net = model.load()           # trained, eval mode" if w["available"] else
        "net = model.build()          # untrained: no weights were exported",
        "logits = net(x)              # x: float tensor of shape "
        f"(batch, {', '.join(map(str, rec['input_shape']))})",
        "```",
        "",
        f"Inputs: {rec['dataset']['preprocessing']}.",
        "",
        "## Files",
        "",
        "- `model.py`: the network code (nasrun/train/models.py verbatim) + CONFIG, build(), load()",
    ]
    if w["available"]:
        lines += [f"- `weights.safetensors`, `weights.pt`: the trained state_dict after epoch {w['epoch']} "
                  "(`torch.load(path, weights_only=True)` or `safetensors.torch.load_file`)"]
    else:
        lines += [f"- no weights: {w['note']}"]
    lines += [
        "- `recipe.json`: config, dataset and split, training recipe, metrics",
        "- `train.py`: retrain from scratch with the recipe",
        "",
        "## Retrain",
        "",
        f"{t['epochs']} epochs, batch {t['batch_size']}, {t['optimizer']} lr {t['lr']:g}"
        f" (momentum {t['momentum']:g}, weight decay {t['weight_decay']:g}), dataset "
        f"{rec['dataset']['name']} with valid_fraction {rec['dataset']['valid_fraction']} and seed "
        f"{rec['dataset']['seed']}:",
        "",
        "```sh",
        rec["retrain_command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def export_trial(path: str, out: str, trial: Optional[int] = None, require_weights: bool = False,
                 force: bool = False) -> Exported:
    """Write trial ``trial`` (default: the best) of the experiment at ``path`` to directory ``out``."""
    import numpy as np
    import torch

    from .train.models import build_model
    snap, spec, notes = load_experiment(path)
    record = choose_trial(snap, spec, path, trial)
    if spec.space.builtin is None:
        raise UserInputError(f"{path}: the space has no builtin architecture (chain or nb201): there is "
                             f"no network to export; trial {record.trial_id}'s config is "
                             f"{json.dumps(dict(record.suggestion.config))}")
    sd, why = _weights(spec, record, snap)
    if why is not None and require_weights:
        raise UserInputError(f"{path}: weights of trial {record.trial_id} are not available: {why}; "
                             "nothing written")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise UserInputError(f"{out}: the directory is not empty; use --force to overwrite")
    state = snap.models.get(record.trial_id) if sd is not None else None
    input_shape, num_classes = _shape(spec, state)
    config = record.suggestion.config
    model = build_model(spec.space.builtin, spec.space.options, config, input_shape, num_classes,
                        _macro(spec))
    tensors = None
    if sd is not None:
        tensors = {k: torch.from_numpy(np.array(v, order="C")) for k, v in sd.items()}  # keeps 0-d shapes
        try:
            model.load_state_dict(tensors)
        except RuntimeError as e:
            raise UserInputError(f"{path}: the stored weights of trial {record.trial_id} do not fit its "
                                 f"architecture: {e}") from None
    os.makedirs(out, exist_ok=True)
    files = []

    def write(name: str, text: str) -> None:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
        files.append(name)

    write("model.py", model_source(spec, config, input_shape, num_classes, record.trial_id))
    if tensors is not None:
        from safetensors.torch import save_file
        save_file(tensors, os.path.join(out, "weights.safetensors"),
                  metadata={"trial_id": str(record.trial_id), "experiment": spec.experiment.name})
        torch.save(tensors, os.path.join(out, "weights.pt"))
        files += ["weights.safetensors", "weights.pt"]
    else:
        for stale in ("weights.safetensors", "weights.pt"):
            if os.path.exists(os.path.join(out, stale)):
                os.remove(os.path.join(out, stale))
        notes.append(f"weights of trial {record.trial_id} are not available: {why}; wrote the "
                     "architecture and the recipe only")
    rec = _recipe(spec, record, input_shape, num_classes, why, int(state.epoch) if state else None)
    write("recipe.json", json.dumps(rec, indent=2) + "\n")
    write("train.py", TRAIN_PY)
    write("README.md", _readme(rec))
    return Exported(record.trial_id, out, files, tensors is not None, spec.objective.metric,
                    record.outcome.value(spec.objective.metric), notes)
