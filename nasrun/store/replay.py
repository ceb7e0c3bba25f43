"""Bring a strategy back to where the logged run left it: snapshot, then replay.

The store keeps a strategy snapshot now and then (a full ``state_dict()``, taken after strategy
call ``seq``) and every trial records the numbers of the calls that asked and told it. Replaying
the asks and tells after the snapshot in call order, on the restored strategy, gives exactly the
state of the uninterrupted run: strategies are deterministic given their state and the calls
made (and an ask that answers WAIT or FINISHED changes nothing, so those are not logged).
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from ..errors import CheckpointError
from ..trial import Suggestion
from .base import Loaded, TrialRecord


def calls_after(loaded: Loaded, seq0: Optional[int] = None) -> List[Tuple[int, str, Any]]:
    """The strategy calls after the snapshot (or after call ``seq0``): (seq, "ask" | "tell",
    Suggestion | Outcome)."""
    seq0 = loaded.strategy_seq if seq0 is None else seq0
    st = loaded.state
    out: List[Tuple[int, str, Any]] = []

    def add(rec: TrialRecord) -> None:
        if rec.ask_seq > seq0:
            out.append((rec.ask_seq, "ask", rec.suggestion))
        if rec.tell_seq > seq0 and rec.outcome is not None:
            out.append((rec.tell_seq, "tell", rec.outcome))

    if st.table is not None:
        for block in st.table.blocks:
            a = np.asarray(block.cols["ask_seq"])
            t = np.asarray(block.cols["tell_seq"])
            for i in np.flatnonzero((a > seq0) | (t > seq0)):
                add(block.record(int(i)))
    for rec in st.fresh:
        add(rec)
    for rec in st.live.values():
        add(rec)
    out.sort(key=lambda c: c[0])
    return out


def restore_strategy(strategy: Any, loaded: Loaded) -> int:
    """Restore ``strategy`` (freshly built from the spec) to the logged state; the number of
    calls replayed. :class:`CheckpointError` when the snapshot cannot be loaded or the replay
    does not reproduce the logged asks."""
    if loaded.strategy_state is not None:
        try:
            strategy.load_state_dict(loaded.strategy_state)
        except Exception as e:  # a forged or foreign state: say so instead of a traceback
            raise CheckpointError(f"the checkpoint's strategy state cannot be restored "
                                  f"({type(e).__name__}: {e})") from None
    calls = calls_after(loaded)
    for seq, kind, payload in calls:
        try:
            if kind == "ask":
                got = strategy.ask()
                if not isinstance(got, Suggestion) or got.to_dict() != payload.to_dict():
                    raise CheckpointError(
                        f"replaying the strategy diverged at call {seq}: it asked {_show(got)} "
                        f"where the run had asked {_show(payload)} (was the strategy's code or "
                        "the spec changed?)")
            else:
                strategy.tell(payload)
        except CheckpointError:
            raise
        except Exception as e:
            raise CheckpointError(f"replaying the strategy failed at call {seq} ({kind}): "
                                  f"{type(e).__name__}: {e}") from None
    return len(calls)


def _show(s: Any) -> str:
    if isinstance(s, Suggestion):
        return f"trial {s.trial_id} {dict(s.config)}"[:300]
    return repr(s)
