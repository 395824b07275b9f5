"""What the three sensor nodes share: problem reporting on /diagnostics and the node clock.

Each problem is raised on an exo_common.diagnostics.Problems (counted), published at once the
first time it appears (or changes level), and listed in the 1 Hz summary while it recurs; a
problem not seen again for a whole summary period is cleared.
"""
from typing import Iterable

from exo_common.diagnostics import Level, Problems, Report
from exo_common.params import ParamSpec
from exo_common.ros import ExoNode, clock_sec

SUMMARY_PERIOD_S = 1.0


class SensorNode(ExoNode):
    """ExoNode with counted, de-duplicated problem reports and a 1 Hz diagnostics summary."""

    def __init__(self, node_name: str, specs: Iterable[ParamSpec], **kwargs):
        super().__init__(node_name, specs, **kwargs)
        self.problems = Problems()
        self._seen: set = set()
        self.published = 0
        self.create_timer(SUMMARY_PERIOD_S, self._publish_summary)

    def now(self) -> float:
        """The node's clock in seconds (0 while use_sim_time waits for the first /clock)."""
        return clock_sec(self.get_clock())

    def report(self, key: str, message: str, values: dict, level: Level = Level.ERROR) -> None:
        """Count a problem; publish it immediately when it is new."""
        self._seen.add(key)
        if self.problems.raise_(key, level, message, **values):
            self.publish_diagnostics([Report(f'{self.get_name()}: {key}', level, message, values)])

    def _publish_summary(self) -> None:
        for key, _ in list(self.problems.items()):
            if key not in self._seen:
                self.problems.clear(key)
        self._seen.clear()
        name = self.get_name()
        reports = [self.problems.summary(f'{name}: status', ok_message='ok', published=self.published)]
        reports += [Report(f'{name}: {key}', level, message, values)
                    for key, (level, message, values) in self.problems.items()]
        self.publish_diagnostics(reports)
