"""Submit and wait, as both engines' ``generate`` does it: ``submit`` a call whose ``done(outcomes)`` is
called once every request is answered (on the engine's own thread: its scheduler's or its asyncio
loop's), and wait here for those outcomes."""

from __future__ import annotations

import threading
from collections.abc import Callable

Done = Callable[[list], None]


def wait_for_outcomes(
    submit: Callable[[Done], None], timeout: float | None, *, drive: Callable[[], None] | None = None, who: str = "the engine"
) -> list:
    """Submit a generate call and wait for its outcomes: ``drive`` runs the loop in this thread (a
    scheduler not started), else another thread answers within ``timeout``."""
    finished = threading.Event()
    box: list = []

    def done(outcomes: list) -> None:
        box.append(outcomes)
        finished.set()

    submit(done)
    if drive is not None:
        drive()
    elif not finished.wait(timeout):
        raise TimeoutError(f"{who} did not answer in time")
    return box[0]
