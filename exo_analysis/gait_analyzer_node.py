"""gait_analyzer: gait events, per-stride metrics and live feedback (thin rclpy shell).

Subscribes: /imu/left_shank_imu, /imu/right_shank_imu (sensor_msgs/Imu), /joint_states,
/gait_controller/effort_request (sensor_msgs/JointState), /hw/treadmill/speed (std_msgs/Float64).
Publishes: /gait/events, /gait/metrics (sensor_msgs/JointState), /gait/feedback
(diagnostic_msgs/DiagnosticArray) - layouts in exo_analysis.settings; /diagnostics.
All analysis is in exo_analysis.analysis (plain Python); times are the messages' device stamps.
"""
import math
import struct
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64

from exo_common.diagnostics import Level, Problems
from exo_common.joints import JOINT_NAMES, LEGS
from exo_common.ros import MONITOR_QOS, STREAM_QOS, ExoNode, node_main, now_sec, sec_to_stamp
from exo_analysis import kinematics
from exo_analysis.analysis import GaitAnalysis
from exo_analysis.feedback import PRAISE
from exo_analysis.settings import (METRIC_NAMES, NODE_NAME, PARAMS, analysis_config, feedback_config,
                                   goal_targets, metric_values)

FUTURE_TOLERANCE_S = 1.0
_CDR_STAMP = struct.Struct('<iI')  # header.stamp right after the 4-byte encapsulation (CDR, LE)


def _cdr_stamp(data: bytes):
    """header.stamp of a serialized stamped message in little-endian CDR, else None."""
    if len(data) < 12 or data[1] != 1:
        return None
    sec, nanosec = _CDR_STAMP.unpack_from(data, 4)
    return sec + nanosec * 1e-9
MAX_SPEED_MPS = 5.0


class GaitAnalyzerNode(ExoNode):

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, PARAMS, **kwargs)
        self.problems = Problems()
        self.analysis = GaitAnalysis(analysis_config(self.params), self._segments())
        self._axis = 'xyz'.index(self.params['imu.sagittal_axis'])
        self._sign = float(self.params['imu.swing_sign'])
        self._joint_period = self.analysis.config.joint_sample_period_s
        self._last_stamp = {}
        self._next_joint_time = -math.inf
        self._next_effort_time = -math.inf
        self._last_arrival = {}
        self._name_maps: dict[tuple, list] = {}
        self._latest = {}
        self._events_pub = self.create_publisher(JointState, '/gait/events', STREAM_QOS)
        self._metrics_pub = self.create_publisher(JointState, '/gait/metrics', STREAM_QOS)
        self._feedback_pub = self.create_publisher(DiagnosticArray, '/gait/feedback', STREAM_QOS)
        for leg in LEGS:
            topic = f'/imu/{leg}_shank_imu'
            self.create_subscription(Imu, topic, lambda msg, leg=leg, topic=topic: self._on_imu(leg, topic, msg),
                                     MONITOR_QOS)
        # 1 kHz streams kept at joint_sample_period_s: taken serialized, and only the kept ones
        # are deserialized (the stamp is read from the CDR bytes), which saves most of their cost
        self.create_subscription(JointState, '/joint_states', self._on_joints_raw, MONITOR_QOS, raw=True)
        self.create_subscription(JointState, '/gait_controller/effort_request', self._on_effort_raw,
                                 MONITOR_QOS, raw=True)
        self.create_subscription(Float64, '/hw/treadmill/speed', self._on_speed, STREAM_QOS)
        self.create_timer(1.0, self._publish_status)

    def _segments(self):
        try:
            from exo_common.description import load_description
            return kinematics.segments_from_urdf(load_description(patient_height=self.params['patient.height_m']).urdf)
        except Exception as exc:  # no URDF: run without step length, and say so
            self.problems.raise_('urdf', Level.ERROR, f'no segment lengths from the URDF ({exc}); '
                                 'step length unavailable')
            return None

    # ------------------------------------------------------------------ parameters
    def on_parameters_changed(self, changed: dict) -> None:
        if any(name.startswith('goals.') for name in changed):
            self.analysis.set_goals(goal_targets(self.params))
        if any(name.startswith('feedback.') for name in changed):
            self.analysis.feedback.config = feedback_config(self.params)
        detector = self.analysis.config.detector
        for name, value in changed.items():
            if name == 'events.swing_threshold_floor_dps':
                detector.swing_threshold_floor = math.radians(value)
            elif name == 'events.heel_strike_delay_percent':
                detector.heel_strike_delay_fraction = value / 100.0
            elif name.startswith('events.') and hasattr(detector, name[len('events.'):]):
                setattr(detector, name[len('events.'):], value)
            elif name == 'events.gap_s':
                self.analysis.config.gap_s = value
            elif name == 'speed.timeout_s':
                self.analysis.config.speed_timeout_s = value

    # ------------------------------------------------------------------ input checks
    def _problem(self, key: str, message: str, level: Level = Level.WARN, **values) -> None:
        if self.problems.raise_(key, level, message, **values):
            self.publish_diagnostics([self.problems.summary(f'{NODE_NAME}: inputs')])

    def _stamp_ok(self, topic: str, stamp: float) -> bool:
        if stamp <= self._last_stamp.get(topic, -math.inf):
            self._problem(f'order.{topic}', f'{topic}: stamp {stamp:.3f} s not after the previous one; '
                          'sample dropped', topic=topic, stamp=stamp)
            return False
        if stamp > now_sec(self) + FUTURE_TOLERANCE_S:
            self._problem(f'future.{topic}', f'{topic}: stamp {stamp:.3f} s is in the future; sample dropped',
                          topic=topic, stamp=stamp)
            return False
        self._last_stamp[topic] = stamp
        self._last_arrival[topic] = time.monotonic()
        return True

    def _in_joint_order(self, topic: str, names, values) -> list | None:
        key = tuple(names)
        order = self._name_maps.get(key)
        if order is None:
            missing = [name for name in JOINT_NAMES if name not in key]
            if missing:
                self._problem(f'names.{topic}', f'{topic}: joints {missing} missing; message ignored',
                              topic=topic)
                return None
            order = self._name_maps[key] = [key.index(name) for name in JOINT_NAMES]
        if len(values) != len(key):
            self._problem(f'length.{topic}', f'{topic}: {len(values)} values for {len(key)} names; '
                          'message ignored', topic=topic)
            return None
        picked = [values[i] for i in order]
        for name, value in zip(JOINT_NAMES, picked):
            if not math.isfinite(value):
                self._problem(f'nan.{topic}', f'{topic}: {name} = {value}; message ignored', topic=topic,
                              joint=name, value=value)
                return None
        return picked

    # ------------------------------------------------------------------ callbacks
    def _on_imu(self, leg: str, topic: str, msg: Imu) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        gyro = msg.angular_velocity
        rate = (gyro.x, gyro.y, gyro.z)[self._axis] * self._sign
        if not math.isfinite(rate):
            self._problem(f'nan.{topic}', f'{topic}: angular velocity {rate}; sample dropped', topic=topic)
            return
        if not self._stamp_ok(topic, stamp):
            return
        events, results = self.analysis.add_gyro(leg, stamp, rate)
        for event in events:
            self._events_pub.publish(JointState(
                header=self._header(event.time), name=[f'{event.leg}_{event.kind}'],
                position=[event.detected_at - event.time]))
        self._publish_strides(results)

    def _on_joints_raw(self, data: bytes) -> None:
        stamp = _cdr_stamp(data)
        if stamp is not None and stamp < self._next_joint_time:  # not kept: only order is checked
            if stamp <= self._last_stamp.get('/joint_states', -math.inf):
                self._stamp_ok('/joint_states', stamp)
            return
        self._on_joints(deserialize_message(data, JointState))

    def _on_effort_raw(self, data: bytes) -> None:
        stamp = _cdr_stamp(data)
        if stamp is not None and stamp < self._next_effort_time:
            return
        self._on_effort(deserialize_message(data, JointState))

    def _on_joints(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp < self._next_joint_time:  # decimated: only every joint_sample_period_s is kept
            if stamp <= self._last_stamp.get('/joint_states', -math.inf):
                self._stamp_ok('/joint_states', stamp)
            return
        positions = self._in_joint_order('/joint_states', msg.name, msg.position)
        if positions is None or not self._stamp_ok('/joint_states', stamp):
            return
        self._next_joint_time = stamp + self._joint_period
        self._publish_strides(self.analysis.add_joints(stamp, positions))

    def _on_effort(self, msg: JointState) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp < self._next_effort_time:
            return
        topic = '/gait_controller/effort_request'
        torque = self._in_joint_order(topic, msg.name, msg.effort)
        velocity = self._in_joint_order(topic, msg.name, msg.velocity)
        if torque is not None and velocity is not None:
            self._next_effort_time = stamp + self._joint_period
            self.analysis.add_effort(stamp, torque, velocity)

    def _on_speed(self, msg: Float64) -> None:
        if not (math.isfinite(msg.data) and 0.0 <= msg.data <= MAX_SPEED_MPS):
            self._problem('speed', f'/hw/treadmill/speed: {msg.data} m/s outside 0..{MAX_SPEED_MPS}; ignored',
                          value=msg.data)
            return
        self.analysis.set_speed(now_sec(self), msg.data)

    # ------------------------------------------------------------------ outputs
    @staticmethod
    def _header(seconds: float):
        header = JointState().header
        header.stamp = sec_to_stamp(seconds)
        return header

    def _publish_strides(self, results) -> None:
        for result in results:
            stride = result.stride
            self._latest[stride.leg] = stride.scalars()
            metrics = JointState(header=self._header(stride.end), name=list(METRIC_NAMES),
                                 position=metric_values(self._latest, result.symmetry_percent,
                                                        stride.speed_mps, result.goals))
            self._metrics_pub.publish(metrics)
            self._feedback_pub.publish(self._feedback_message(result))

    def _feedback_message(self, result) -> DiagnosticArray:
        stride = result.stride
        message = DiagnosticArray()
        message.header.stamp = sec_to_stamp(stride.end)
        cue = result.cue
        if cue is not None:
            level = Level.OK if cue.kind == PRAISE else Level.WARN
            message.status.append(_status(level, f'{NODE_NAME}: cue', cue.text, code=cue.code,
                                          priority=cue.priority, leg=cue.leg, value=f'{cue.value:.3f}',
                                          target=f'{cue.target:.3f}', unit=cue.unit))
        if stride.biofeedback_nm:
            message.status.append(_status(Level.OK, f'{NODE_NAME}: biofeedback {stride.leg}',
                                          'mean -torque*sign(reference velocity) per phase [N m]',
                                          **{k: f'{v:.2f}' for k, v in stride.biofeedback_nm.items()}))
        for goal in result.goals:
            message.status.append(_status(Level.OK, f'{NODE_NAME}: goal {goal.name}',
                                          f'{goal.progress_percent:.0f} % of the goal',
                                          target=goal.target, current=f'{goal.current:.3f}',
                                          best=f'{goal.best:.3f}', progress_percent=f'{goal.progress_percent:.1f}'))
        return message

    def _publish_status(self) -> None:
        now = time.monotonic()
        timeout = self.params['input.stale_timeout_s']
        for topic in ('/imu/left_shank_imu', '/imu/right_shank_imu', '/joint_states'):
            silent = now - self._last_arrival.get(topic, -math.inf)
            if silent > timeout:
                self.problems.raise_(f'stale.{topic}', Level.WARN, f'no valid data on {topic} for '
                                     f'{"ever" if math.isinf(silent) else f"{silent:.1f} s"}', topic=topic)
            else:
                self.problems.clear(f'stale.{topic}')
        detectors = self.analysis.detectors
        self.publish_diagnostics([self.problems.summary(
            f'{NODE_NAME}: inputs', strides=self.analysis.strides, gaps=self.analysis.gaps,
            **{f'{leg}.heel_strikes': d.counters.heel_strikes for leg, d in detectors.items()},
            **{f'{leg}.rejected.{k}': v for leg, d in detectors.items() for k, v in d.counters.rejected.items()})])


def _status(level: Level, name: str, text: str, **values) -> DiagnosticStatus:
    return DiagnosticStatus(level=bytes([int(level)]), name=name, message=text, hardware_id='exo_gait',
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


def main():
    node_main(GaitAnalyzerNode)


if __name__ == '__main__':
    main()
