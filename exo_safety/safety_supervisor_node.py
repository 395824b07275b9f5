"""safety_supervisor: the only publisher of /effort_controller/commands.

Thin rclpy shell around exo_safety.supervisor.Supervisor (all decisions live there). Each input
is judged in its own callback and a violation is answered by the safe command in that same
callback; the watchdog timer catches silence and repeats the safe command while torque is off.
Events are published (/diagnostics, /safety_supervisor/state) and fsync'd to the fault log
only after the safe command has left.
"""
import time

from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from exo_common.diagnostics import Level, Report
from exo_common.joints import JOINT_NAME_LIST, JOINT_NAMES
from exo_common.params import ConfigError
from exo_common.ros import LATCHED_QOS, STREAM_QOS, ExoNode, clock_sec, node_main
from exo_safety.events import EventKind, EventLog, SafetyEvent
from exo_safety.supervisor import FAULT, PARAMETERS, Supervisor

try:  # Jazzy and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # pragma: no cover - older rclpy
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

NODE_NAME = 'safety_supervisor'
COMMAND_TOPIC = '/effort_controller/commands'
REQUEST_TOPIC = '/gait_controller/effort_request'
STAMPED_TOPIC = '/safety_supervisor/command_stamped'
STATE_TOPIC = '/safety_supervisor/state'
PELVIS_IMU_TOPIC = '/imu/pelvis_imu'
SUMMARY_PERIOD_S = 1.0
CALLER_NOTE = 'caller identity not available (std_srvs requests carry none)'

__all__ = ['SafetySupervisorNode', 'PARAMETERS', 'main']


class SafetySupervisorNode(ExoNode):
    """ROS shell of the safety supervisor (topics and services in docs/INTERFACES.md).

    Raises:
        ConfigError: bad parameters, joint limits that cannot be read from the URDF, or a
            fault log that cannot be opened (a supervisor that cannot record must not run).
    """

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, PARAMETERS, **kwargs)
        from exo_common.description import DescriptionError, joint_limits
        try:
            limits = joint_limits()
            self.supervisor = Supervisor([limits[name] for name in JOINT_NAMES], self.params)
        except (DescriptionError, KeyError, ValueError) as exc:
            raise ConfigError(f'{NODE_NAME}: cannot build the interlocks from the URDF limits: {exc}') from exc
        try:
            self.event_log = EventLog(self.params['fault_log.path'], on_written=self._log_event)
        except OSError as exc:
            raise ConfigError(f'{NODE_NAME}: cannot open the fault log: {exc}') from exc
        self._clock = self.get_clock()
        self._sim_time = self.get_parameter('use_sim_time').value
        self._qos_problems: list[str] = []
        self._last_counts: dict = {}

        self._command_pub = self.create_local_publisher(
            Float64MultiArray, COMMAND_TOPIC, STREAM_QOS,
            event_callbacks=PublisherEventCallbacks(incompatible_qos=self._qos_event(COMMAND_TOPIC)))
        self._stamped_pub = self.create_local_publisher(JointState, STAMPED_TOPIC, STREAM_QOS)
        self._state_pub = self.create_publisher(String, STATE_TOPIC, LATCHED_QOS)
        self._input_subscriptions = [
            self.create_local_subscription(
                msg_type, topic, callback, STREAM_QOS, first=True,
                event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._qos_event(topic)))
            for msg_type, topic, callback in (
                (JointState, REQUEST_TOPIC, self._on_request),
                (JointState, '/joint_states', self._on_joint_states),
                (Imu, PELVIS_IMU_TOPIC, self._on_pelvis_imu))]
        self._check_qos_at_start()
        self.create_service(SetBool, '/safety_supervisor/enable', self._on_enable)
        self.create_service(Trigger, '/safety_supervisor/estop', self._on_estop)
        self.create_service(Trigger, '/safety_supervisor/reset', self._on_reset)
        self._published_state = None
        self._publish_state()
        self._repeat_after = 0.9 * self.params['watchdog.period']
        self.create_timer(self.params['watchdog.period'], self._on_watchdog)
        self.create_timer(SUMMARY_PERIOD_S, self._publish_summary)
        self.get_logger().info(f'{self.supervisor.state}; fault log {self.event_log.path} '
                               f'(last sequence {self.event_log.last_sequence})')

    # ------------------------------------------------------------------ hot path

    def _steady(self) -> float:
        """The watchdogs' time base: the steady clock, or simulated time under use_sim_time
        (in a lock-step simulation the supervised hardware's own clock is the simulated one;
        stalls of the simulation are not stalls of the hardware)."""
        return self._ros_now() if self._sim_time else time.monotonic()

    def _ros_now(self) -> float:
        return clock_sec(self._clock)

    def _on_request(self, msg: JointState) -> None:
        steady = self._steady()
        stamp = msg.header.stamp
        command = self.supervisor.on_request(stamp.sec + stamp.nanosec * 1e-9, msg.name, msg.effort,
                                             msg.position, msg.velocity, self._ros_now(), steady)
        self._answer(command, stamp)

    def _on_joint_states(self, msg: JointState) -> None:
        steady = self._steady()
        stamp = msg.header.stamp
        command = self.supervisor.on_joint_states(stamp.sec + stamp.nanosec * 1e-9, msg.name,
                                                  msg.position, msg.velocity, msg.effort,
                                                  self._ros_now(), steady)
        self._answer(command, stamp)

    def _on_pelvis_imu(self, msg: Imu) -> None:
        steady = self._steady()
        stamp = msg.header.stamp
        q, w, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
        command = self.supervisor.on_pelvis_imu(
            stamp.sec + stamp.nanosec * 1e-9, (q.x, q.y, q.z, q.w), msg.orientation_covariance[0] != -1.0,
            (w.x, w.y, w.z), (a.x, a.y, a.z), self._ros_now(), steady)
        self._answer(command, stamp)

    def _on_watchdog(self) -> None:
        command = self.supervisor.tick(self._ros_now(), self._steady(), self._repeat_after)
        self._answer(command, None)

    def _answer(self, command, stamp) -> None:
        """Publish the command (if any) first, then whatever the input caused."""
        if command is not None:
            self._publish(command, stamp if stamp is not None else self._clock.now().to_msg())
        supervisor = self.supervisor
        if supervisor.events or supervisor.diagnostics_due:
            self._after_events()

    def _publish(self, command: list, stamp) -> None:
        # new messages each time: their DDS copies may go out later (LocalPublisher)
        self._command_pub.publish(Float64MultiArray(data=command))
        stamped = JointState(name=JOINT_NAME_LIST, effort=command)
        stamped.header.stamp = stamp
        self._stamped_pub.publish(stamped)

    # ------------------------------------------------------------------ events (off the hot path)

    def _after_events(self) -> None:
        supervisor = self.supervisor
        events = supervisor.drain_events()
        self._publish_state()
        for event in events:  # numbered here; written, fsync'd and logged by the log's own thread
            self.event_log.append(event)
        if self.event_log.error is not None:
            supervisor.problems.raise_('fault_log.write', Level.ERROR, f'cannot write the fault log '
                                       f'{self.event_log.path}: {self.event_log.error}')
            supervisor.diagnostics_due = True
        reports = [self._event_report(event) for event in events if event.kind != EventKind.OPERATOR]
        if reports:
            self.publish_diagnostics(reports)
        if supervisor.diagnostics_due:
            supervisor.diagnostics_due = False
            self._publish_summary()

    def _event_report(self, event: SafetyEvent) -> Report:
        if event.kind == EventKind.FAULT:
            return Report(f'{NODE_NAME}: fault', Level.ERROR, f'{event.code}: {event.message}', event.fields())
        return Report(f'{NODE_NAME}: safe stop', Level.WARN, f'{event.code}: {event.message}', event.fields())

    def _log_event(self, event: SafetyEvent) -> None:
        logger = self.get_logger()
        text = (f'[{event.sequence}] {event.kind.value} {event.code}: {event.message} '
                f'(ros {event.ros_time:.6f} s, steady {event.steady_time:.6f} s, '
                f'{event.state_before} -> {event.state_after})')
        if event.kind == EventKind.FAULT:
            logger.error(text)
        elif event.kind == EventKind.SAFE_STOP:
            logger.warning(text)
        else:
            logger.info(f'{text}; {CALLER_NOTE}')

    def _publish_state(self) -> None:
        state = self.supervisor.state
        if state != self._published_state:
            self._state_pub.publish(String(data=state))
            self._published_state = state

    def _publish_summary(self) -> None:
        supervisor = self.supervisor
        problems = supervisor.problems
        for key, count in list(problems.counts.items()):  # a problem not seen since the last summary is over
            if self._last_counts.get(key) == count:
                problems.clear(key)
        self._last_counts = dict(problems.counts)
        self._check_command_publishers()
        steady = self._steady()
        values = {'state': supervisor.state, 'engaged': supervisor.engaged,
                  'fault_log': str(self.event_log.path)}
        for watch in (supervisor.joint_states, supervisor.imu, supervisor.request):
            values[f'{watch.name}.age_ms'] = f'{watch.age(steady) * 1e3:.1f}'
            values[f'{watch.name}.accepted'] = watch.accepted
            values[f'{watch.name}.refused'] = watch.refused
        report = problems.summary(f'{NODE_NAME}: state', f'{supervisor.state}', **values)
        if supervisor.state == FAULT:
            report.level = Level.ERROR
            report.message = f'FAULT latched: {supervisor.latched.code}: {supervisor.latched.message}'
            report.values.update({f'fault.{k}': v for k, v in supervisor.latched.fields().items()})
        elif report.level == Level.OK and supervisor.state == 'ENABLED' and not supervisor.engaged:
            report.message = 'ENABLED, waiting for the controller reference to match the posture'
        self.publish_diagnostics([report])

    # ------------------------------------------------------------------ QoS and graph checks

    def _qos_event(self, topic: str):
        def on_incompatible(event) -> None:
            self.supervisor.problems.raise_(
                f'qos.{topic}', Level.ERROR,
                f'{topic}: incompatible QoS with a peer (policy {event.last_policy_kind}); '
                f'expected {STREAM_QOS.reliability.name} {STREAM_QOS.durability.name}')
            self._publish_summary()
        return on_incompatible

    def _check_qos_at_start(self) -> None:
        """The endpoints really got the profiles of docs/INTERFACES.md (a QoS override file could
        change them): refuse to start otherwise."""
        expected = [(self._command_pub, STREAM_QOS), (self._stamped_pub, STREAM_QOS),
                    (self._state_pub, LATCHED_QOS)]
        expected += [(subscription, STREAM_QOS) for subscription in self._input_subscriptions]
        for endpoint, profile in expected:
            actual = endpoint.qos_profile
            for policy in ('reliability', 'durability', 'history', 'depth'):
                if getattr(actual, policy) != getattr(profile, policy):
                    raise ConfigError(f'{NODE_NAME}: {endpoint.topic_name} got {policy} '
                                      f'{getattr(actual, policy)}, expected {getattr(profile, policy)}')

    def _check_command_publishers(self) -> None:
        others = [f'{info.node_namespace.rstrip("/")}/{info.node_name}'
                  for info in self.get_publishers_info_by_topic(COMMAND_TOPIC)
                  if (info.node_name, info.node_namespace) != (self.get_name(), self.get_namespace())]
        if others:
            self.supervisor.problems.raise_('commands.other_publisher', Level.ERROR,
                                            f'{COMMAND_TOPIC} has other publishers: {", ".join(others)} '
                                            f'(only the safety supervisor may publish there)')

    # ------------------------------------------------------------------ services

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.success, response.message = self.supervisor.enable(
            request.data, self._ros_now(), self._steady())
        self._after_service()
        return response

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.supervisor.estop(self._ros_now(), self._steady())
        self._after_service()
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.supervisor.reset(self._ros_now(), self._steady())
        self._after_service()
        return response

    def _after_service(self) -> None:
        """Safe command first when torque went off; then the events.

        With torque off (e-stop, reset, disable) the answer waits until the events are on disk.
        After an accepted enable it does not: the handler runs on the executor that carries the
        sensor and request callbacks, and fsync stalls of tens to hundreds of milliseconds were
        measured here, long enough to starve the watchdogs of the loop just enabled. The log's
        thread writes and fsyncs the enable event moments later.
        """
        if self.supervisor.state == 'ENABLED':
            self._after_events()
            return
        self._publish(self.supervisor.command, self._clock.now().to_msg())
        self._after_events()
        if not self.event_log.flush(timeout=2.0):
            self.get_logger().error(f'fault log {self.event_log.path}: write still pending after 2 s')

    # ------------------------------------------------------------------ parameters and shutdown

    def check_parameters(self, candidate: dict):
        supervisor = getattr(self, 'supervisor', None)
        if supervisor is None:
            return None
        try:
            Supervisor(supervisor.limits, candidate)
        except ValueError as exc:
            return str(exc)
        return None

    def on_parameters_changed(self, changed: dict) -> None:
        self.supervisor.configure(self.params)
        self._repeat_after = 0.9 * self.params['watchdog.period']

    def shutdown_hook(self) -> None:
        """Torque off on the way out: the safe command three times, then close the log."""
        supervisor = self.supervisor
        if supervisor.state == 'ENABLED':
            supervisor.enable(False, self._ros_now(), self._steady())
            self._after_events()
        for _ in range(3):
            self._publish(supervisor.safe_command(self._steady()), self._clock.now().to_msg())
        self.event_log.close()


def main():
    node_main(SafetySupervisorNode)


if __name__ == '__main__':
    main()
