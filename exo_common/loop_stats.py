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

GRID_TOLERANCE_NS = 1000  # device stamps are whole ns of a simulated time on the sample grid


class LoopStats:
    """Latency and delivery of commands over a measurement window.

    Args:
        period_s: control period (1 / rate).
    """

    def __init__(self, period_s: float):
        self.period_ns = period_s * 1e9  # not whole ns in general: 1.5 kHz samples are 666,666.67 ns apart
        self._latencies_ns: list[int] = []
        self._stamps_ns: list[int] = []  # of the samples in _latencies_ns, in the same order
        self._seen_stamps: set[int] = set()
        self.first_stamp_ns = None
        self.last_stamp_ns = None
        self.duplicates = 0
        self.off_grid = 0
        self.late = 0
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

    def _add(self, source_stamp_ns: int, arrival_ns: int) -> None:
        if self.first_stamp_ns is not None:
            periods = (source_stamp_ns - self.first_stamp_ns) / self.period_ns
            if abs(periods - round(periods)) * self.period_ns > GRID_TOLERANCE_NS:
                self.off_grid += 1
                return
        if source_stamp_ns in self._seen_stamps:
            self.duplicates += 1
            return
        self._seen_stamps.add(source_stamp_ns)
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
        """Counts so far, in constant time (the full summary sorts every latency)."""
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
        latency_ms = np.asarray(self._latencies_ns, dtype=float) / 1e6
        expected = round((self.last_stamp_ns - self.first_stamp_ns) / self.period_ns) + 1
        answered_in_time = latency_ms <= self.period_ns / 1e6
        in_time = int(np.count_nonzero(answered_in_time))
        in_time_stamps = np.sort(np.asarray(self._stamps_ns, dtype=np.int64)[answered_in_time])
        return {
            'commands': len(latency_ms),
            'expected_samples': int(expected),
            'delivered_pct': round(100.0 * in_time / expected, 3),
            'late_commands': self.late,
            'unanswered_samples': int(expected - len(latency_ms)),
            'longest_gap_ms': round(float(np.diff(in_time_stamps).max(initial=0)) / 1e6, 3),
            'latency_p50_ms': round(float(np.percentile(latency_ms, 50)), 3),
            'latency_p90_ms': round(float(np.percentile(latency_ms, 90)), 3),
            'latency_p99_ms': round(float(np.percentile(latency_ms, 99)), 3),
            'latency_p99_9_ms': round(float(np.percentile(latency_ms, 99.9)), 3),
            'latency_max_ms': round(float(latency_ms.max()), 3),
            'duplicates': self.duplicates,
            'off_grid': self.off_grid,
            'window_ns': [self.first_stamp_ns, self.last_stamp_ns + round(self.period_ns)],
            'late_windows_ns': self._late_windows(expected),
        }

    def _late_windows(self, expected: int) -> list:
        """[sample stamp, arrival] of every late command and [stamp, stamp + period] of every
        sample no command answered: the windows in which the loop failed, to set beside what
        else the machine was doing then (exo_common.timer_probe.attribute)."""
        seen = np.asarray(self._stamps_ns, dtype=np.int64)
        latency = np.asarray(self._latencies_ns, dtype=np.int64)
        present = np.zeros(expected, dtype=bool)
        present[np.rint((seen - self.first_stamp_ns) / self.period_ns).astype(np.int64)] = True
        missing = self.first_stamp_ns + np.rint(np.flatnonzero(~present) * self.period_ns).astype(np.int64)
        late = latency > self.period_ns
        windows = np.stack((seen[late], seen[late] + latency[late]), axis=1).tolist()
        windows += [[stamp, stamp + round(self.period_ns)] for stamp in missing.tolist()]
        return sorted(windows)
