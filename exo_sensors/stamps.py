"""Checks on device timestamps shared by the sensor nodes (plain Python, no rclpy).

A sample is refused when its device stamp is stale (older than `max_age` against the node's
clock), from the future (ahead by more than `max_future`), a duplicate of the previous accepted
stamp, or older than it (out of order). Ages are only judged once the clock runs: with
`use_sim_time` the ROS clock reads 0 until the first /clock message, and every sample would
look future-stamped.
"""
from typing import Optional


class StampCheck:
    """Stateful order and age check of one stream's device stamps.

    Args:
        max_age: largest accepted age of a sample when it is processed (s).
        max_future: largest accepted lead of a stamp over the node's clock (s).
    """

    def __init__(self, max_age: float, max_future: float):
        self.max_age = max_age
        self.max_future = max_future
        self.last: Optional[float] = None

    def problem(self, stamp: float, now: float) -> Optional[tuple[str, str, dict]]:
        """None when the stamp is acceptable (and then remembered), else (kind, message, values).

        Args:
            stamp: device stamp of the sample (s).
            now: the node's clock (s); 0 or less means the clock is not running yet.
        """
        last = self.last
        if last is not None and stamp <= last:
            kind = 'duplicate stamp' if stamp == last else 'out-of-order stamp'
            return kind, f'{kind}: {stamp:.6f} s after {last:.6f} s', {'stamp': stamp, 'previous': last}
        if now > 0.0:
            age = now - stamp
            if age > self.max_age:
                return ('stale stamp', f'stale sample: {age * 1e3:.1f} ms old (limit {self.max_age * 1e3:.1f} ms)',
                        {'stamp': stamp, 'age_s': age})
            if -age > self.max_future:
                return ('future stamp',
                        f'future-stamped sample: {-age * 1e3:.1f} ms ahead of the clock '
                        f'(limit {self.max_future * 1e3:.1f} ms)', {'stamp': stamp, 'lead_s': -age})
        self.last = stamp
        return None
