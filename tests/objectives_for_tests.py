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
    return {"valid_accuracy": 1.0 / (1 + config["num_layers"]),
            "seen_state": float(context.state is not None)}


def timed(config, context):
    """A deterministic score with a simulated training time (the train_seconds metric)."""
    opts = context.options
    tid = context.trial_id
    if tid in opts.get("signal_trials", []):
        os.kill(os.getpid(), signal.SIGUSR1)
    if tid in opts.get("fail_trials", []):
        raise ValueError(f"planned failure of trial {tid}")
    layers = config.get("num_layers", 1)
    acc = 1.0 / (1 + layers) + 0.001 * (tid % 7)
    if tid in opts.get("nan_trials", []):
        acc = float("nan")
    seconds = opts.get("seconds", 10.0) + 7.0 * layers + (tid % 5)
    return {"valid_accuracy": acc, "train_seconds": seconds,
            "seen_state": float(context.state is not None)}


def sleeper(config, context):
    import time
    time.sleep(context.options.get("sleep", 0.0))
    return {"valid_accuracy": 0.5}


SIGNALLED: set = set()


def stateful(config, context):
    """Trains ``budget`` (or options.epochs) fake epochs, saving a state after each and reporting
    each epoch; continues from the state it is given. The metric grows with the epochs. With
    ``options.epoch_seconds`` each epoch takes that long (a trial in flight long enough to be
    killed or signalled)."""
    import time

    import numpy as np

    from nasrun.store import ModelState
    epochs = int(context.budget or context.options.get("epochs", 3))
    start = context.state.epoch if context.state is not None else 0
    w = context.state.tensors["w"].copy() if context.state is not None else np.zeros(4)
    quality = 1.0 / (1 + config.get("num_layers", 1)) + 0.01 * config.get("x", 0)
    acc = 0.0
    for e in range(start + 1, epochs + 1):
        time.sleep(context.options.get("epoch_seconds", 0.0))
        w = w + 1.0
        acc = quality * (1 - 0.5 ** e)
        context.save_state(ModelState(context.trial_id, e, {"w": w}, {"curve": []}))
        key = (context.options.get("run_key"), context.trial_id)
        if e == 1 and context.trial_id in context.options.get("signal_trials", []) \
                and key not in SIGNALLED:
            SIGNALLED.add(key)  # once per process and run: the resumed run does not signal again
            os.kill(os.getpid(), signal.SIGUSR1)
        if context.report(e, {"valid_accuracy": acc}):
            break
    return {"valid_accuracy": acc, "start_epoch": float(start), "w0": float(w[0]),
            "train_seconds": 5.0 * (epochs - start)}


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


def big_state(config, context):
    """One large float32 tensor (``options.elements``, a bit pattern that any changed byte breaks)
    saved as trial 0's state; then, with NASRUN_TEST_BIG_HANG set, trial 0 waits to be killed. A trial given
    a state checks it against the pattern and reports ``bytes_identical`` and the rank it ran on.
    Other trials return at once."""
    import time

    import numpy as np

    from nasrun.store import ModelState
    n = int(context.options["elements"])
    rank = float(os.environ.get("OMPI_COMM_WORLD_RANK", "-1"))
    if context.trial_id != 0:
        return {"valid_accuracy": 0.1, "rank": rank}
    if context.state is not None:
        got = context.state.tensors["w"]
        want = np.arange(n, dtype=np.uint32).view(np.float32)
        same = got.dtype == want.dtype and got.shape == want.shape \
            and zlib.crc32(memoryview(got).cast("B")) == context.state.meta["crc32"] \
            and np.array_equal(got.view(np.uint32), want.view(np.uint32))
        return {"valid_accuracy": 0.9, "bytes_identical": float(same), "rank": rank,
                "writer_rank": float(context.state.meta["rank"])}
    w = np.arange(n, dtype=np.uint32).view(np.float32)
    crc = zlib.crc32(memoryview(w).cast("B"))
    context.save_state(ModelState(0, 1, {"w": w}, {"crc32": crc, "rank": rank}))
    while os.environ.get("NASRUN_TEST_BIG_HANG"):  # until killed; reporting lets rank 0 learn of the write
        context.report(1, {"valid_accuracy": 0.0})
        time.sleep(0.5)
    return {"valid_accuracy": 0.5, "rank": rank}


def tiny_train(config, context):
    """Real training, tiny: a torch MLP (hidden width from ``num_layers``) on 128 fixed samples,
    8 SGD-with-momentum steps per epoch, ``budget`` epochs (multi-fidelity), a state (weights and
    momentum buffers) saved after every epoch and continued from when given."""
    import numpy as np
    import torch

    from nasrun.store import ModelState
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(context.trial_id)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4 * config.get("num_layers", 1)), torch.nn.ReLU(),
                              torch.nn.Linear(4 * config.get("num_layers", 1), 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    start = 0
    if context.state is not None:
        t = context.state.tensors
        net.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in t.items() if k.startswith("model.")})
        opt.step()  # creates the momentum buffers, then they are overwritten
        for i, p in enumerate(net.parameters()):
            opt.state[p]["momentum_buffer"] = torch.from_numpy(t[f"momentum.{i}"]).clone()
        start = context.state.epoch
    epochs = int(context.budget or 3)
    acc = 0.0
    for e in range(start + 1, epochs + 1):
        for i in range(8):
            xb, yb = x[16 * i:16 * (i + 1)], y[16 * i:16 * (i + 1)]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
        with torch.no_grad():
            acc = float((net(x).argmax(1) == y).float().mean())
        tensors = {f"model.{k}": v.detach().numpy().copy() for k, v in net.state_dict().items()}
        for i, p in enumerate(net.parameters()):
            buf = opt.state[p].get("momentum_buffer")
            tensors[f"momentum.{i}"] = (buf if buf is not None else torch.zeros_like(p)).numpy().copy()
        context.save_state(ModelState(context.trial_id, e, tensors, {"rng": np.zeros(1)}))
        context.report(e, {"valid_accuracy": acc})
    return {"valid_accuracy": acc, "start_epoch": float(start)}


def hang(config, context):
    """A trial stuck where the time limit's SIGALRM cannot reach it (blocked), as a rank stuck in
    a collective or in C code would be: only rank 0's deadline can end it."""
    import time
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(3600)
    return {"valid_accuracy": 0.0}


def curves(config, context):
    """A learning curve per configuration, reported epoch by epoch: ``options.epochs`` epochs
    (default 8) rising to a level set by the configuration; stops when a stopper says so.
    ``options.fail_trials`` fail at epoch 2; train_seconds is 3 s per epoch run."""
    opts = context.options
    level = 0.5 + 0.4 * ((config.get("num_layers", 1) * 7 + context.trial_id * 3) % 10) / 10
    acc = 0.0
    for epoch in range(1, int(opts.get("epochs", 8)) + 1):
        if context.trial_id in opts.get("fail_trials", []) and epoch == 2:
            raise ValueError(f"planned failure of trial {context.trial_id}")
        acc = level * (1.0 - 0.6 * epoch ** -1.0)
        if context.report(epoch, {"valid_accuracy": acc}):
            return {"valid_accuracy": acc, "train_seconds": 3.0 * epoch}
    return {"valid_accuracy": acc, "train_seconds": 3.0 * epoch}
