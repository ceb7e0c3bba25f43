"""Trial records for the store benchmarks, built with the classes of whichever nasrun is imported
(today's, or the baseline's exported from history): no other imports."""
import os

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def make_records(trial_mod, store_base, first: int, n: int):
    """``n`` finished NB201-like trial records with ids ``first``.. (classes of the given modules,
    so the same code builds records for today's store and for the baseline's)."""
    import random
    rnd = random.Random(first)
    out = []
    for i in range(first, first + n):
        ops = [rnd.choice(OPS) for _ in range(6)]
        arch = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
        cfg = {f"edge_{k}": ops[k] for k in range(6)}
        cfg["arch_str"] = arch
        acc = 0.5 + 0.4 * rnd.random()
        curve = tuple({"epoch": float(e + 1), "valid_accuracy": acc * (e + 1) / 12,
                       "train_loss": 2.0 / (e + 1)} for e in range(12))
        metrics = {"valid_accuracy": acc, "test_accuracy": acc - 0.01, "train_seconds": 1800.0,
                   "params": 1.0e6 + i, "flops": 1.0e8 + i}
        sug = trial_mod.Suggestion(i, cfg)
        o = trial_mod.Outcome(i, "done", metrics, curve)
        out.append(store_base.TrialRecord(sug, "done", o, group=i % 64, start=1.7e9 + i,
                                          end=1.7e9 + i + 1800.0, job_id="4242"))
    return out


def du(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total
