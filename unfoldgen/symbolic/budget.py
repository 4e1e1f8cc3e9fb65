"""A time budget for one symbolic derivation, so a hard case is refused instead of hanging."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class OverBudget(BaseException):
    """The derivation took longer than its budget. A ``BaseException``, so that SymPy's own
    ``except Exception`` clauses (``checksol`` has them) cannot swallow it and run on."""


REPEAT_S = 0.25  # after the budget, the alarm fires again until the block has stopped


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`OverBudget` in the block after ``seconds`` (wall clock). Outside the main
    thread, where signals cannot be delivered, the block runs without a budget."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
