"""Work a periodic loop does in its spare time, in order, without delaying its next cycle (plain).

The simulator's device work (EMG generation, IMU/EMG/truth/status messages) must not delay the
next control sample: items run oldest first while the loop's deadline has not passed, except
when too many are waiting (then the oldest run regardless, so nothing is lost or delayed
without bound).
"""
import time
from collections import deque
from typing import Callable


class SpareTimeWork:
    """A FIFO of deferred work.

    Args:
        max_backlog: more items than this waiting run regardless of the deadline.
        clock: monotonic seconds.
    """

    def __init__(self, max_backlog: int = 20, clock: Callable[[], float] = time.monotonic):
        self.max_backlog = max_backlog
        self._clock = clock
        self._items: deque = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, work: Callable[[], None]) -> None:
        self._items.append(work)

    def run(self, deadline: float) -> int:
        """Run waiting items, oldest first, while the clock is before deadline or the backlog is
        too long; returns how many ran."""
        ran = 0
        items, clock = self._items, self._clock
        while items and (clock() < deadline or len(items) > self.max_backlog):
            items.popleft()()
            ran += 1
        return ran
