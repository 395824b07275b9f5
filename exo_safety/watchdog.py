"""Freshness of one input stream: arrival age on a steady clock plus stamp order and age.

Plain Python, no rclpy. A message that fails a stamp check (future-stamped, duplicated, out of
order, too old against the node clock) is refused and does not feed the watchdog, so a stream
of bad messages looks exactly like silence and ends in the same safe reaction.
"""
from __future__ import annotations

import math
from typing import Optional

from exo_sensors.stamps import StampCheck


class StreamWatch:
    """Watchdog of one input stream.

    Args:
        name: stream name for messages ('joint_states', 'pelvis_imu', 'request').
        max_age: largest steady-clock time since the last accepted message (s).
        max_stamp_age: largest age of a message's stamp against the node clock (s).
        max_future: largest lead of a stamp over the node clock (s).
    """

    def __init__(self, name: str, max_age: float, max_stamp_age: float, max_future: float):
        self.name = name
        self.max_age = max_age
        self.stamps = StampCheck(max_stamp_age, max_future)
        self.last_arrival = -math.inf
        self.accepted = 0
        self.refused = 0

    def admit(self, stamp: float, ros_now: float, steady_now: float) -> Optional[tuple[str, str, dict]]:
        """None when the message is accepted (and the watchdog fed), else (kind, message, values)."""
        problem = self.stamps.problem(stamp, ros_now)
        if problem is None:
            self.last_arrival = steady_now
            self.accepted += 1
        else:
            self.refused += 1
        return problem

    def age(self, steady_now: float) -> float:
        """Seconds since the last accepted message (inf if none ever arrived)."""
        return steady_now - self.last_arrival

    def stale(self, steady_now: float) -> bool:
        return steady_now - self.last_arrival > self.max_age

    def freshness_problem(self, steady_now: float) -> Optional[str]:
        """A sentence when the stream is stale or never arrived, else None."""
        if self.accepted == 0:
            return f'{self.name}: no valid message has arrived'
        age = self.age(steady_now)
        if age > self.max_age:
            return f'{self.name}: stale, last valid message {age * 1e3:.1f} ms ago (limit {self.max_age * 1e3:.1f} ms)'
        return None
