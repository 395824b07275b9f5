"""Plain diagnostic records; exo_common.ros turns them into diagnostic_msgs."""
from dataclasses import dataclass, field
import enum


class Level(enum.IntEnum):
    """Same numbers as diagnostic_msgs/DiagnosticStatus."""
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass
class Report:
    """One diagnostic status.

    Args:
        name: '<node>: <what>', e.g. 'encoder_node: left_knee_joint'.
        level: Level.
        message: one human sentence.
        values: key -> value, shown as KeyValue pairs (values are str()-ed).
    """
    name: str
    level: Level
    message: str
    values: dict = field(default_factory=dict)
    hardware_id: str = 'exo_gait'


class Problems:
    """Per-key latest problem, so a periodic status says what is wrong now and what was.

    Each problem also counts occurrences, so none is silently lost between two publications.
    """

    def __init__(self):
        self._active: dict[str, tuple[Level, str, dict]] = {}
        self.counts: dict[str, int] = {}

    def raise_(self, key: str, level: Level, message: str, **values) -> bool:
        """Record a problem; True when it is new or changed level (publish it now)."""
        self.counts[key] = self.counts.get(key, 0) + 1
        previous = self._active.get(key)
        self._active[key] = (level, message, values)
        return previous is None or previous[0] != level

    def clear(self, key: str) -> bool:
        return self._active.pop(key, None) is not None

    def worst(self) -> Level:
        return max((level for level, _, _ in self._active.values()), default=Level.OK)

    def items(self):
        return self._active.items()

    def summary(self, name: str, ok_message: str = 'ok', **values) -> Report:
        level = self.worst()
        if level == Level.OK:
            message = ok_message
        else:
            message = '; '.join(msg for lvl, msg, _ in self._active.values() if lvl == level)
        merged = dict(values)
        merged.update({f'count.{key}': count for key, count in self.counts.items()})
        return Report(name, level, message, merged)
