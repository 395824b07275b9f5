"""When a periodic thread got no CPU although it should have been running (plain).

A control loop's thread alternates between work and waits for its next deadline. It is held
off when, for at least a threshold, the wall clock moved on while it neither computed nor
chose to wait: it woke up after its deadline without having been busy meanwhile (the kernel or
a virtual machine's host ran it late), or it was descheduled or blocked in the middle of its
work. The thread's own CPU time tells the two apart from slow work: wall time it did not spend
on the CPU was spent off it. This is the loop's own view of what the timer probe
(exo_common.timer_probe) sees from a thread of its own, on whichever CPU the loop ran, and it
costs two clock reads per span.

Being blocked counts too (on a lock another thread holds, in a system call): the thread got
no CPU whatever the reason; the caller knows which span it was (mujoco_sim names them on
~/held_off).
"""
import time
from typing import Callable, Optional

HELD_OFF_S = 0.0005  # the timer probe's stall: half a 1 kHz control period


class HeldOffSpans:
    """Measures contiguous spans of one thread; call only from that thread.

    Args:
        threshold_s: shortest held-off time reported.
        clock: monotonic seconds.
        cpu_clock: this thread's CPU seconds.
        wall_ns: wall-clock ns, for the reported intervals (device stamps are on the wall clock).

    Raises:
        ValueError: a non-positive threshold.
    """

    def __init__(self, threshold_s: float = HELD_OFF_S, clock: Callable[[], float] = time.monotonic,
                 cpu_clock: Callable[[], float] = time.thread_time,
                 wall_ns: Callable[[], int] = time.time_ns):
        if not threshold_s > 0.0:
            raise ValueError(f'threshold_s must be positive, got {threshold_s}')
        self.threshold_s = threshold_s
        self._clock, self._cpu_clock, self._wall_ns = clock, cpu_clock, wall_ns
        self._started, self._cpu = clock(), cpu_clock()
        self.count = 0
        self.longest_s = 0.0

    def begin(self) -> None:
        """Start a span now (spans otherwise follow each other: each starts where the last ended)."""
        self._started, self._cpu = self._clock(), self._cpu_clock()

    def end(self, due: Optional[float] = None) -> Optional[tuple]:
        """End the span begun last and start the next one.

        Args:
            due: monotonic time until which the thread chose to wait in this span (it meant to
                run again from then on); None for a span of work.

        Returns:
            (start_ns, end_ns) on the wall clock of the time the thread was held off, when at
            least the threshold: from the deadline (or the span's start) to now. Else None.
        """
        now, cpu = self._clock(), self._cpu_clock()
        start = self._started if due is None else max(self._started, due)
        held = (now - start) - (cpu - self._cpu)
        self._started, self._cpu = now, cpu
        if held < self.threshold_s:
            return None
        self.count += 1
        self.longest_s = max(self.longest_s, held)
        end_ns = self._wall_ns()
        return (end_ns - round((now - start) * 1e9), end_ns)
