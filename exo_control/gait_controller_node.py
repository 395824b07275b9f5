"""gait_controller: rclpy shell around exo_control.controller.GaitController.

The request is computed in the /joint_states callback (event-driven: no timer in the control
chain) and published on /gait_controller/effort_request with the stamp of that sample. The
safety supervisor decides what reaches the actuators; this node never publishes
/effort_controller/commands.
"""
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, MultiArrayDimension, String

from exo_common.description import expand_xacro, joint_limits, load_description
from exo_common.diagnostics import Level, Report
from exo_common.joints import JOINT_NAME_LIST, JOINT_NAMES, LEGS
from exo_common.ros import LATCHED_QOS, STREAM_QOS, ExoNode, node_main, now_sec, stamp_to_sec
from exo_control.controller import PARAMS, GaitController, check_params
from exo_control.dynamics import ExoDynamics

NODE_NAME = 'gait_controller'
STATUS_PERIOD_S = 0.05   # ~/phase and ~/assistance
SUMMARY_PERIOD_S = 1.0   # /diagnostics summary, treadmill and EMG timeouts


class GaitControllerNode(ExoNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, PARAMS, **kwargs)
        height = self.params['patient_height_m']
        dynamics = ExoDynamics(expand_xacro(patient_height=height, wearer=False))
        limits = joint_limits(load_description(patient_height=height))
        self.controller = GaitController(self.params, dynamics, limits)
        self._safety_state = None
        self._order = None  # index map when /joint_states names come in another order
        self._request_pub = self.create_local_publisher(JointState, '/gait_controller/effort_request', STREAM_QOS)
        self._phase_pub = self.create_publisher(Float64MultiArray, '~/phase', STREAM_QOS)
        self._assistance_pub = self.create_publisher(Float64MultiArray, '~/assistance', LATCHED_QOS)
        self._assistance_joint_pub = self.create_publisher(Float64MultiArray, '~/assistance_per_joint',
                                                           LATCHED_QOS)
        self.create_local_subscription(JointState, '/joint_states', self._on_joint_states, STREAM_QOS)
        self.create_subscription(JointState, '/emg/envelope', self._on_emg, STREAM_QOS)
        self.create_subscription(Float64, '/hw/treadmill/speed', self._on_treadmill, STREAM_QOS)
        self.create_subscription(String, '/safety_supervisor/state', self._on_safety_state, LATCHED_QOS)
        self.create_timer(STATUS_PERIOD_S, self._publish_status)
        self.create_timer(SUMMARY_PERIOD_S, self._publish_summary)

    # ---------------------------------------------------------------- parameters

    def check_parameters(self, candidate: dict):
        return check_params(candidate)

    def on_parameters_changed(self, changed: dict) -> None:
        self.controller.apply_params(changed)

    # ---------------------------------------------------------------- inputs

    def _on_joint_states(self, msg: JointState) -> None:
        controller = self.controller
        names = msg.name
        position, velocity = msg.position, msg.velocity
        if names != JOINT_NAME_LIST:
            order = self._reorder(names)
            if order is None:
                controller.report('joint_states', Level.ERROR,
                                  f'expected joint names {JOINT_NAME_LIST} (any order), got {list(names)}')
                position, velocity = (), ()
            else:
                try:
                    position = [position[i] for i in order]
                    velocity = [velocity[i] for i in order]
                except IndexError:
                    position, velocity = (), ()
        effort = controller.step(stamp_to_sec(msg.header.stamp), position, velocity, now_sec(self))
        request = JointState(name=JOINT_NAME_LIST, position=controller.reference_position,
                             velocity=controller.reference_velocity, effort=effort)
        request.header.stamp = msg.header.stamp
        self._request_pub.publish(request)  # a new message each time: its DDS copy may go out later
        if controller.pending:
            self._publish_pending()

    def _reorder(self, names):
        if len(names) != len(JOINT_NAMES) or set(names) != set(JOINT_NAMES):
            return None
        if self._order is None or self._order[0] != list(names):
            self._order = (list(names), [list(names).index(n) for n in JOINT_NAMES])
        return self._order[1]

    def _on_emg(self, msg: JointState) -> None:
        problem = self.controller.set_emg(stamp_to_sec(msg.header.stamp), msg.name, msg.position)
        if problem:
            self.controller.report('emg', Level.WARN, problem + '; working without EMG')
        else:
            self.controller.resolve('emg', 'EMG usable again')
        self._publish_pending()

    def _on_treadmill(self, msg: Float64) -> None:
        problem = self.controller.set_treadmill_speed(msg.data, now_sec(self))
        if problem:
            self.controller.report('treadmill', Level.WARN, problem + '; using reference.speed_kmh')
        else:
            self.controller.resolve('treadmill', 'treadmill speed received')
        self._publish_pending()

    def _on_safety_state(self, msg: String) -> None:
        self._safety_state = msg.data
        self.controller.set_enabled(msg.data == 'ENABLED')

    # ---------------------------------------------------------------- outputs

    def _publish_pending(self) -> None:
        pending = self.controller.take_pending()
        if pending:
            self.publish_diagnostics([Report(f'{NODE_NAME}: {key}', level, message, values)
                                      for key, level, message, values in pending])

    def _publish_status(self) -> None:
        controller = self.controller
        self._phase_pub.publish(Float64MultiArray(
            layout=_layout(('leg', len(LEGS))), data=list(controller.phases)))
        levels = controller.assistance_map()
        bins = len(levels[0])
        self._assistance_pub.publish(Float64MultiArray(
            layout=_layout(('joint', len(JOINT_NAMES)), ('phase_bin', bins)),
            data=[100.0 * value for row in levels for value in row]))
        self._assistance_joint_pub.publish(Float64MultiArray(
            layout=_layout(('joint', len(JOINT_NAMES))),
            data=[100.0 * sum(row) / bins for row in levels]))

    def _publish_summary(self) -> None:
        controller = self.controller
        now = now_sec(self)
        if controller.check_treadmill(now):
            controller.report('treadmill', Level.WARN, 'treadmill speed timed out; using reference.speed_kmh')
        emg_state = 'off'
        if controller.params['emg.enabled']:
            emg_state = 'yielding' if controller.emg_active(now) else 'absent or stale (no yielding)'
        self._publish_pending()
        state = self._safety_state or 'unknown (no message yet)'
        report = controller.problems.summary(
            f'{NODE_NAME}: status', ok_message=f'{controller.params["mode"]}, safety {state}',
            mode=controller.params['mode'], safety_state=state, torque_ramp=round(controller.ramp, 3),
            phase_left=round(controller.phases[0], 3), phase_right=round(controller.phases[1], 3),
            speed_mps=round(controller.reference.settings[0], 3), emg=emg_state,
            **{f'assistance_percent.{name}': round(100.0 * value, 1)
               for name, value in zip(JOINT_NAMES, controller.assistance)})
        self.publish_diagnostics([report])

    def shutdown_hook(self) -> None:
        request = JointState(name=JOINT_NAME_LIST)
        request.header.stamp = self.get_clock().now().to_msg()
        request.effort = [0.0] * len(JOINT_NAMES)
        self._request_pub.publish(request)


def _layout(*dims):
    layout = Float64MultiArray().layout
    stride = 1
    for _, size in dims:
        stride *= size
    for label, size in dims:
        layout.dim.append(MultiArrayDimension(label=label, size=size, stride=stride))
        stride //= size
    return layout


def main():
    node_main(GaitControllerNode)


if __name__ == '__main__':
    main()
