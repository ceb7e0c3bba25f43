"""Objective functions used by the runtime tests (``type: function``)."""
import os
import signal


def score(config, context):
    if context.trial_id in context.options.get("fail_trials", []):
        raise ValueError(f"planned failure of trial {context.trial_id}")
    if context.trial_id in context.options.get("signal_trials", []):
        os.kill(os.getpid(), signal.SIGTERM)
    return {"valid_accuracy": 1.0 / (1 + config["num_layers"]), "seen_state": float(context.state is not None)}
