"""The machine's own timer latency, measured the way cyclictest (rt-tests) does, in plain Python.

A thread at the highest real-time priority sleeps to a deadline every period and records how
late it woke. It does nothing else, so any lateness beyond Python's own (tens of microseconds)
is the machine's: the kernel, interrupts, or a virtual machine's host not running the vCPU.
Run beside the stack, its stalls tell a late command that the stack could not have prevented
from one it could (`attribute`). Without permission for real-time priority it runs at normal
priority and says so: then its stalls include the stack's own load.

    python -m exo_common.timer_probe --duration 60 --out probe.npz   # writes due/latency arrays

SIGTERM or SIGINT end the measurement early; what was measured is still written.
"""
import argparse
import json
import os
import signal
import time
from typing import Optional

import numpy as np

PROBE_PRIORITY = 90  # above every process of the stack (exo_common.graph.GROUP_PRIORITY)
STALL_NS = 500_000   # a wake-up this late is a stall: half a 1 kHz control period


def measure(duration_s: float, period_s: float = 0.001, priority: int = PROBE_PRIORITY,
            stopped=lambda: False) -> dict:
    """Sleep to a deadline every period for duration_s, or until stopped() is true.

    Returns:
        {'due_ns': wall-clock deadlines (int64), 'latency_ns': how late each wake-up was (int64),
         'realtime': whether the real-time priority was granted}.

    Raises:
        ValueError: non-positive duration or period.
    """
    if not (duration_s > 0.0 and period_s > 0.0):
        raise ValueError(f'duration_s and period_s must be positive, got {duration_s}, {period_s}')
    realtime = False
    if priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            realtime = True
        except (AttributeError, PermissionError, OSError):
            pass
    count = int(duration_s / period_s)
    period_ns = int(round(period_s * 1e9))
    deadlines = np.empty(count, dtype=np.int64)
    latency = np.empty(count, dtype=np.int64)
    start = time.monotonic_ns() + period_ns
    end = start + count * period_ns
    offset = time.time_ns() - time.monotonic_ns()  # wall clock of the deadlines, as stamps are
    done = 0
    due = start
    while due < end and not stopped():
        delay = due - time.monotonic_ns()
        if delay > 0:
            time.sleep(delay * 1e-9)
        woke = time.monotonic_ns()
        deadlines[done], latency[done] = due, woke - due
        done += 1
        # one stall is one late wake-up: the deadlines it swallowed are skipped, not each
        # counted as late again (as a control loop slips by whole periods)
        due += max(1, (woke - due) // period_ns + 1) * period_ns
    return {'due_ns': deadlines[:done] + offset, 'latency_ns': latency[:done], 'realtime': realtime}


def summary(latency_ns: np.ndarray, realtime: bool) -> dict:
    """Wake-up latency percentiles in ms and the number of stalls over 0.5, 1 and 5 ms."""
    if len(latency_ns) == 0:
        return {'wakeups': 0, 'realtime_priority': realtime}
    ms = np.asarray(latency_ns, dtype=float) / 1e6
    return {
        'wakeups': int(len(ms)),
        'realtime_priority': realtime,
        'wakeup_p50_ms': round(float(np.percentile(ms, 50)), 3),
        'wakeup_p99_ms': round(float(np.percentile(ms, 99)), 3),
        'wakeup_p99_9_ms': round(float(np.percentile(ms, 99.9)), 3),
        'wakeup_max_ms': round(float(ms.max()), 3),
        'stalls_over_0_5ms': int(np.count_nonzero(ms > 0.5)),
        'stalls_over_1ms': int(np.count_nonzero(ms > 1.0)),
        'stalls_over_5ms': int(np.count_nonzero(ms > 5.0)),
    }


def stalls(due_ns: np.ndarray, latency_ns: np.ndarray, threshold_ns: int = STALL_NS) -> np.ndarray:
    """(start, end) wall-clock ns of each stall: from a deadline to a wake-up later than threshold."""
    late = np.asarray(latency_ns) > threshold_ns
    starts = np.asarray(due_ns)[late]
    return np.stack([starts, starts + np.asarray(latency_ns)[late]], axis=1) if len(starts) else np.empty((0, 2), np.int64)


def ceiling_pct(due_ns: np.ndarray, latency_ns: np.ndarray, period_s: float, response_s: float) -> Optional[float]:
    """The most a control loop could have delivered on this machine while the probe ran: the
    percentage of the deadlines, one every period_s over the probe's span, at which a loop that
    needs nothing but response_s from sample to command would still have answered in time, i.e.
    a thread that woke within the period less response_s. A deadline inside a stall that
    outlasts that budget is missed.

    An upper bound: a stall that began between two of the probe's deadlines counts only from
    the next one. None when the probe measured nothing.

    Raises:
        ValueError: a non-positive period, or a response outside [0, period).
    """
    if not period_s > 0.0 or not 0.0 <= response_s < period_s:
        raise ValueError(f'period_s must be > 0 and response_s in [0, period_s), got {period_s}, {response_s}')
    period_ns = round(period_s * 1e9)
    budget_ns = period_ns - round(response_s * 1e9)
    due = np.asarray(due_ns, dtype=np.int64)
    latency = np.asarray(latency_ns, dtype=np.int64)
    if not len(due):
        return None
    first = due[0]
    total = int((due[-1] + latency[-1] - first) // period_ns) + 1
    outlasting = latency > budget_ns
    starts = due[outlasting] - first
    ends = starts + latency[outlasting] - budget_ns
    # deadlines k * period_ns in [start, end): the thread could not run within the budget
    missed = int(np.sum(np.maximum(0, -(-ends // period_ns) - -(-starts // period_ns))))
    return round(100.0 * (1.0 - missed / total), 3)


def attribute(late_commands: np.ndarray, stall_intervals: np.ndarray) -> int:
    """How many late commands had a machine stall inside their sample-to-arrival window.

    Args:
        late_commands: (n, 2) sample stamp and arrival, wall-clock ns.
        stall_intervals: (m, 2) from `stalls`, sorted by start.
    """
    late_commands = np.asarray(late_commands, dtype=np.int64).reshape(-1, 2)
    if not len(late_commands) or not len(stall_intervals):
        return 0
    starts, ends = stall_intervals[:, 0], stall_intervals[:, 1]
    # a stall overlaps [stamp, arrival] when it starts before the arrival and ends after the stamp
    before_arrival = np.searchsorted(starts, late_commands[:, 1], side='right')
    latest_end = np.maximum.accumulate(ends)
    overlapping = before_arrival > 0
    overlapping[overlapping] = latest_end[before_arrival[overlapping] - 1] > late_commands[overlapping, 0]
    return int(np.count_nonzero(overlapping))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m exo_common.timer_probe', description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=float, required=True, help='seconds to measure')
    parser.add_argument('--period', type=float, default=0.001, help='seconds between deadlines')
    parser.add_argument('--out', default='', help='.npz file for the due and latency arrays')
    options = parser.parse_args(argv)
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.append(True))
    result = measure(options.duration, options.period, stopped=lambda: bool(stop))
    if options.out:
        np.savez(options.out, due_ns=result['due_ns'], latency_ns=result['latency_ns'],
                 realtime=result['realtime'])
    print(json.dumps(summary(result['latency_ns'], result['realtime'])))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
