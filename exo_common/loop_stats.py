"""Closed-loop timing at the hardware boundary (plain; the loop_monitor node feeds it).

For every command the safety supervisor approved, the latency is its arrival time at the
hardware process minus the stamp of the raw encoder sample it was computed from (stamps are
device times on the wall clock in real-time simulation). A command is delivered in time when it
arrives within one control period of its sample, i.e. before the physics step it is meant for.
Commands whose stamp is not on the samples' grid answer no sample (the supervisor's watchdog
repeats its safe command with the current time, e.g. while it disables at the end): they are
counted apart and take no part in the figures.
"""
import threading

import numpy as np

from exo_common.timer_probe import attribute

GRID_TOLERANCE_NS = 1000  # device stamps are whole ns of a simulated time on the sample grid


class LoopStats:
    """Latency and delivery of commands over a measurement window.

    Args:
        period_s: control period (1 / rate).
    """

    def __init__(self, period_s: float):
        self.period_ns = period_s * 1e9  # not whole ns in general: 1.5 kHz samples are 666,666.67 ns apart
        self._latencies_ns: list[int] = []
        # of the samples in _latencies_ns, in the same order; a repeated stamp is dropped only by
        # the summary: a set of every stamp seen, rehashed as it grew, took 1.8 ms of the loop's
        # thread at its 19,661st command (a late command or two at 1 kHz in every session)
        self._stamps_ns: list[int] = []
        self.first_stamp_ns = None
        self.last_stamp_ns = None
        self.off_grid = 0
        self.late = 0  # repeats included
        self._held_off: list = []  # (start_ns, end_ns, source) of the loop thread's held-off times
        self.measuring = False
        self._lock = threading.Lock()  # commands keep arriving in the hardware's thread while a summary is made

    def start(self) -> None:
        self.measuring = True

    def stop(self) -> None:
        self.measuring = False

    def on_command(self, source_stamp_ns: int, arrival_ns: int) -> None:
        if not self.measuring or source_stamp_ns == 0:
            return
        with self._lock:
            self._add(source_stamp_ns, arrival_ns)

    def on_held_off(self, start_ns: int, end_ns: int, source: str) -> None:
        """The loop's thread got no CPU from start_ns to end_ns while it should have run
        (exo_common.held_off), wall clock."""
        if self.measuring:
            with self._lock:
                self._held_off.append((start_ns, end_ns, source))

    def _add(self, source_stamp_ns: int, arrival_ns: int) -> None:
        if self.first_stamp_ns is not None:
            periods = (source_stamp_ns - self.first_stamp_ns) / self.period_ns
            if abs(periods - round(periods)) * self.period_ns > GRID_TOLERANCE_NS:
                self.off_grid += 1
                return
        latency_ns = arrival_ns - source_stamp_ns
        self._latencies_ns.append(latency_ns)
        self._stamps_ns.append(source_stamp_ns)
        if latency_ns > self.period_ns:
            self.late += 1
        if self.first_stamp_ns is None or source_stamp_ns < self.first_stamp_ns:
            self.first_stamp_ns = source_stamp_ns
        if self.last_stamp_ns is None or source_stamp_ns > self.last_stamp_ns:
            self.last_stamp_ns = source_stamp_ns

    def progress(self) -> dict:
        """Counts so far (repeats of a sample included), in constant time (the full summary
        sorts every latency)."""
        return {'commands': len(self._latencies_ns), 'late': self.late}

    def summary(self) -> dict:
        """Figures in ms and percent; delivered counts every sample the window should have had.
        Latencies are of the commands that came; samples no command answered count as missed
        (unanswered_samples), and longest_gap_ms is the longest time between two samples
        answered in time (one period when none is missed): how long the actuators went without a
        fresh command."""
        with self._lock:
            return self._summary()

    def _summary(self) -> dict:
        if not self._latencies_ns:
            return {'commands': 0, 'delivered_pct': 0.0}
        stamps, first = np.unique(np.asarray(self._stamps_ns, dtype=np.int64), return_index=True)
        latency_ns = np.asarray(self._latencies_ns, dtype=np.int64)[first]  # each sample's first answer
        latency_ms = latency_ns / 1e6
        expected = round((self.last_stamp_ns - self.first_stamp_ns) / self.period_ns) + 1
        answered_in_time = latency_ms <= self.period_ns / 1e6
        in_time = int(np.count_nonzero(answered_in_time))
        in_time_stamps = stamps[answered_in_time]
        late_windows = self._late_windows(expected, stamps, latency_ns)
        return {
            'commands': len(latency_ms),
            'expected_samples': int(expected),
            'delivered_pct': round(100.0 * in_time / expected, 3),
            'late_commands': int(len(latency_ms) - in_time),
            'unanswered_samples': int(expected - len(latency_ms)),
            'longest_gap_ms': round(float(np.diff(in_time_stamps).max(initial=0)) / 1e6, 3),
            'latency_p50_ms': round(float(np.percentile(latency_ms, 50)), 3),
            'latency_p90_ms': round(float(np.percentile(latency_ms, 90)), 3),
            'latency_p99_ms': round(float(np.percentile(latency_ms, 99)), 3),
            'latency_p99_9_ms': round(float(np.percentile(latency_ms, 99.9)), 3),
            'latency_max_ms': round(float(latency_ms.max()), 3),
            'duplicates': len(self._stamps_ns) - len(stamps),
            'off_grid': self.off_grid,
            'window_ns': [self.first_stamp_ns, self.last_stamp_ns + round(self.period_ns)],
            **self._held_off_figures(late_windows),
            'late_windows_ns': late_windows,
        }

    def _held_off_figures(self, late_windows: list) -> dict:
        """How often the loop's thread was held off, and how many late or missing commands had a
        held-off time inside their window, in all and by the span it fell in."""
        held = sorted(self._held_off)
        misses = np.array(late_windows, dtype=np.int64).reshape(-1, 2)
        by_source: dict = {}
        for start, end, source in held:
            by_source.setdefault(source, []).append((start, end))
        return {
            'held_off': len(held),
            'held_off_longest_ms': round(max((end - start for start, end, _ in held), default=0) / 1e6, 3),
            'misses_while_held_off': attribute(misses, _intervals([h[:2] for h in held])),
            'misses_while_held_off_by_span': {source: attribute(misses, _intervals(spans))
                                              for source, spans in sorted(by_source.items())},
            'held_off_ns': [list(h) for h in held],
        }

    def _late_windows(self, expected: int, seen: np.ndarray, latency: np.ndarray) -> list:
        """[sample stamp, arrival] of every late command and [stamp, stamp + period] of every
        sample no command answered: the windows in which the loop failed, to set beside what
        else the machine was doing then (exo_common.timer_probe.attribute)."""
        present = np.zeros(expected, dtype=bool)
        present[np.rint((seen - self.first_stamp_ns) / self.period_ns).astype(np.int64)] = True
        missing = self.first_stamp_ns + np.rint(np.flatnonzero(~present) * self.period_ns).astype(np.int64)
        late = latency > self.period_ns
        windows = np.stack((seen[late], seen[late] + latency[late]), axis=1).tolist()
        windows += [[stamp, stamp + round(self.period_ns)] for stamp in missing.tolist()]
        return sorted(windows)


def _intervals(spans: list) -> np.ndarray:
    return np.array(spans, dtype=np.int64).reshape(-1, 2)
