"""Objective functions used by the runtime tests (``type: function``)."""
import json
import os
import signal
import zlib


def score(config, context):
    if context.trial_id in context.options.get("fail_trials", []):
        raise ValueError(f"planned failure of trial {context.trial_id}")
    if context.trial_id in context.options.get("signal_trials", []):
        os.kill(os.getpid(), signal.SIGTERM)
    return {"valid_accuracy": 1.0 / (1 + config["num_layers"]), "seen_state": float(context.state is not None)}


def sized(config, context):
    """A chain-space network scored without training, deterministically: accuracy grows with the
    summed layer widths (so the most accurate trials are the largest: ``params``), the training
    time ``train_seconds`` too (10 s per unit of width); a few thousandths of jitter from the
    configuration break ties. ``test_accuracy`` is 0.02 below the accuracy. With the option
    ``log: PATH`` each trial appends its id to that file."""
    if context.options.get("log"):
        with open(context.options["log"], "a") as f:
            f.write(f"{context.trial_id}\n")
    width = sum(config[f"layer{i}_width"] for i in range(config["num_layers"]))
    jitter = (zlib.crc32(json.dumps(config, sort_keys=True).encode()) % 1000) / 1e5
    acc = 0.5 + 0.004 * width + jitter
    return {"valid_accuracy": acc, "test_accuracy": acc - 0.02, "params": 1000.0 * width,
            "train_seconds": 10.0 * width}
