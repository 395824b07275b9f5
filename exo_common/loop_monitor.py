"""loop_monitor: measures the closed loop where the actuators are (benchmarks, diagnosis).

Runs in the hardware's process (the embedded runner puts it next to mujoco_sim), listens to
/safety_supervisor/command_stamped, /safety_supervisor/state and /mujoco_sim/held_off (the
times the simulator's physics thread got no CPU while it should have run), and measures while
the supervisor is ENABLED. Writes its figures as JSON to `output` when it stops; publishes the
counts so far (commands, late) on /diagnostics once a second.
"""
import json
import time

from sensor_msgs.msg import JointState, TimeReference
from std_msgs.msg import String

from exo_common.diagnostics import Level, Report
from exo_common.loop_stats import LoopStats
from exo_common.params import ParamSpec
from exo_common.ros import LATCHED_QOS, MONITOR_QOS, STREAM_QOS, ExoNode, node_main, stamp_to_ns

NODE_NAME = 'loop_monitor'
PARAMETERS = [
    ParamSpec('control_rate_hz', 1000.0, 'control rate of the loop being measured', 'Hz',
              50.0, 5000.0, read_only=True),
    ParamSpec('warmup_s', 2.0, 'time after enabling before measuring starts', 's', 0.0, 60.0,
              read_only=True),
    ParamSpec('output', '', 'file for the JSON figures at shutdown ("" = none)', read_only=True),
]


class LoopMonitorNode(ExoNode):

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, PARAMETERS, **kwargs)
        self.stats = LoopStats(1.0 / self.params['control_rate_hz'])
        self._enabled_at = None
        self.create_local_subscription(JointState, '/safety_supervisor/command_stamped', self._on_command, STREAM_QOS)
        self.create_subscription(String, '/safety_supervisor/state', self._on_state, LATCHED_QOS)
        self.create_local_subscription(TimeReference, '/mujoco_sim/held_off', self._on_held_off, MONITOR_QOS)
        self.create_timer(1.0, self._report)

    def _on_command(self, msg: JointState) -> None:
        arrival = time.time_ns()
        if self._enabled_at is not None and not self.stats.measuring:
            if time.monotonic() - self._enabled_at >= self.params['warmup_s']:
                self.stats.start()
        stamp = msg.header.stamp
        self.stats.on_command(stamp_to_ns(stamp), arrival)

    def _on_held_off(self, msg: TimeReference) -> None:
        self.stats.on_held_off(stamp_to_ns(msg.header.stamp), stamp_to_ns(msg.time_ref), msg.source)

    def _on_state(self, msg: String) -> None:
        if msg.data == 'ENABLED' and self._enabled_at is None:
            self._enabled_at = time.monotonic()
        elif msg.data != 'ENABLED':
            self.stats.stop()

    def _report(self) -> None:
        # counts only: percentiles over a growing history took milliseconds of the loop's process
        self.publish_diagnostics([Report(f'{NODE_NAME}: loop', Level.OK, 'closed-loop timing',
                                         self.stats.progress())])

    def shutdown_hook(self) -> None:
        if self.params['output']:
            with open(self.params['output'], 'w') as out:
                json.dump(self.stats.summary(), out)


def main():
    node_main(LoopMonitorNode)


if __name__ == '__main__':
    main()
