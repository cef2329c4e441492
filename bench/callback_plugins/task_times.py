"""Print the wall time of each task of a playbook run (enabled by ``bench.py --tasks``)."""

from __future__ import annotations

import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Time from the start of one task to the start of the next, printed at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._current: tuple[str, float] | None = None
        self._times: list[tuple[str, float]] = []

    def _next(self, name: str | None) -> None:
        now = time.perf_counter()
        if self._current:
            self._times.append((self._current[0], now - self._current[1]))
        self._current = (name, now) if name else None

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._next(task.get_name())

    def v2_playbook_on_stats(self, stats) -> None:
        self._next(None)
        for name, seconds in self._times:
            self._display.display(f"task_times {seconds:7.2f} s  {name}")
