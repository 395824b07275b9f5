"""session_recorder: records topics into an MCAP file with ROS 2 encoding (thin rclpy shell).

The file is readable by `ros2 bag` (rosbag2 MCAP storage), rosbags and Foxglove. The plain
writer is exo_analysis.mcap_io.McapRecorder (re-exported here); this node subscribes with
`raw=True`, so messages are written as the serialized bytes that arrived, never deserialised
(about 8,000 messages/s of a full session). Each message's MCAP publish time is its header
stamp (device time) when the type starts with a Header, else the receive time; log time is the
receive time on the node's clock (sim time under use_sim_time).

Topics are given as 'topic', 'topic:package/msg/Type' or 'topic:package/msg/Type:latched'.
With a type the subscription starts at once (nothing is lost at start-up); without one the type
is taken from the ROS graph when a publisher appears. Latched topics subscribe TRANSIENT_LOCAL
so the current value (e.g. the safety state) is recorded even if it was published earlier.

The session metadata (patient id, profile, speed, assistance, start time) is stored as the MCAP
metadata record 'exo_gait.session'; 'exo_gait.session_end' adds the end time and message
counts when the file is closed. Chunks are flushed every `flush_period_s` (and fsync'ed), so a
crash loses at most that much; SIGINT/SIGTERM close the file with its summary.
"""
import datetime
import importlib
import pathlib
import time

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from exo_common.diagnostics import Level, Problems
from exo_common.joints import IMU_FRAMES
from exo_common.params import ParamSpec
from exo_common.ros import ExoNode, node_main
from exo_analysis.mcap_io import McapRecorder, split_type

NODE_NAME = 'session_recorder'
DEFAULT_SESSIONS_DIR = pathlib.Path.home() / '.local' / 'share' / 'exo_gait' / 'sessions'
_JOINT_STATE = 'sensor_msgs/msg/JointState'
_IMU = 'sensor_msgs/msg/Imu'
DEFAULT_TOPICS = [
    f'/hw/joint_states:{_JOINT_STATE}', f'/joint_states:{_JOINT_STATE}',
    f'/gait_controller/effort_request:{_JOINT_STATE}', f'/safety_supervisor/command_stamped:{_JOINT_STATE}',
    *(f'/hw/imu/{frame}:{_IMU}' for frame in IMU_FRAMES), *(f'/imu/{frame}:{_IMU}' for frame in IMU_FRAMES),
    '/hw/emg:trajectory_msgs/msg/JointTrajectory', f'/emg/envelope:{_JOINT_STATE}',
    '/hw/treadmill/speed:std_msgs/msg/Float64', '/diagnostics:diagnostic_msgs/msg/DiagnosticArray',
    '/safety_supervisor/state:std_msgs/msg/String:latched',
    '/gait_controller/assistance:std_msgs/msg/Float64MultiArray:latched',
    '/gait_controller/assistance_per_joint:std_msgs/msg/Float64MultiArray:latched',
    '/gait_controller/phase:std_msgs/msg/Float64MultiArray',
    f'/mujoco_sim/truth/phase:{_JOINT_STATE}',
    f'/gait/events:{_JOINT_STATE}', f'/gait/metrics:{_JOINT_STATE}',
    '/gait/feedback:diagnostic_msgs/msg/DiagnosticArray',
]
RECORD_DEPTH = 100  # generous queue: a recorder must not lose bursts


def _topic_specs_ok(entries) -> str | None:
    for entry in entries:
        parts = entry.split(':')
        if not parts[0].startswith('/') or len(parts) > 3 or (len(parts) == 3 and parts[2] != 'latched'):
            return f'topics: {entry!r} is not "/topic[:package/msg/Type[:latched]]"'
        if len(parts) >= 2:
            try:
                split_type(parts[1])
            except ValueError as exc:
                return f'topics: {exc}'
    return None


PARAMS = [
    ParamSpec('output_dir', '', f'folder for the session files ("" = {DEFAULT_SESSIONS_DIR})', read_only=True),
    ParamSpec('session.name', '', 'file name without .mcap ("" = <patient>_<start time>)', read_only=True),
    ParamSpec('patient.id', 'anonymous', 'patient identifier stored with the session', read_only=True),
    ParamSpec('session.profile', '', 'impairment / training profile of the session', read_only=True),
    ParamSpec('session.speed_mps', 0.0, 'treadmill speed set for the session', 'm/s', 0.0, 5.0, read_only=True),
    ParamSpec('session.assistance_percent', 100.0, 'assistance level at the start', '%', 0.0, 100.0,
              read_only=True),
    ParamSpec('topics', DEFAULT_TOPICS, 'topics to record: /topic[:package/msg/Type[:latched]]',
              read_only=True, check=_topic_specs_ok),
    ParamSpec('chunk_size_kib', 1024, 'MCAP chunk size before compression', 'KiB', 16, 65536, read_only=True),
    ParamSpec('compression', 'zstd', 'chunk compression', choices=('zstd', 'lz4', 'none'), read_only=True),
    ParamSpec('reliable', False, 'record streams with reliable QoS keeping all samples (complete, but '
              'a recorder that falls behind then holds up the publishers, the control loop '
              'included); default best effort', read_only=True),
    ParamSpec('flush_period_s', 1.0, 'chunks are written and fsync-ed at least this often (the most a '
              'crash can lose)', 's', 0.1, 60.0),
    ParamSpec('discovery_period_s', 1.0, 'how often untyped topics are looked up in the graph', 's', 0.1, 30.0,
              read_only=True),
]


def _message_class(type_name: str):
    package, name = split_type(type_name)
    return getattr(importlib.import_module(f'{package}.msg'), name)


class SessionRecorderNode(ExoNode):

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, PARAMS, **kwargs)
        self.problems = Problems()
        started = datetime.datetime.now(datetime.timezone.utc)
        self.session = {
            'patient_id': self.params['patient.id'], 'profile': self.params['session.profile'],
            'speed_mps': self.params['session.speed_mps'],
            'assistance_percent': self.params['session.assistance_percent'],
            'started_utc': started.isoformat(timespec='seconds'),
        }
        name = self.params['session.name'] or f'{self.params["patient.id"]}_{started:%Y%m%d-%H%M%S}'
        folder = pathlib.Path(self.params['output_dir'] or DEFAULT_SESSIONS_DIR).expanduser()
        self.recorder = McapRecorder(folder / f'{name}.mcap', {'exo_gait.session': self.session},
                                     chunk_size=self.params['chunk_size_kib'] * 1024,
                                     compression=self.params['compression'])
        self.get_logger().info(f'recording to {self.recorder.path}')
        self._failed = False
        self._use_wall_clock = not self.get_parameter('use_sim_time').value
        self._untyped: dict[str, bool] = {}
        for entry in self.params['topics']:
            topic, *rest = entry.split(':')
            latched = len(rest) == 2
            if rest:
                self._subscribe(topic, rest[0], latched)
            else:
                self._untyped[topic] = latched
        self._flush_timer = self.create_timer(self.params['flush_period_s'], self._flush)
        if self._untyped:
            self.create_timer(self.params['discovery_period_s'], self._discover)
            self._discover()
        self.create_timer(1.0, self._publish_status)

    def _now_ns(self) -> int:
        return time.time_ns() if self._use_wall_clock else self.get_clock().now().nanoseconds

    def _subscribe(self, topic: str, type_name: str, latched: bool) -> None:
        try:
            message_class = _message_class(type_name)
            self.recorder.add_channel(topic, type_name, 'transient_local' if latched else '')
        except (ImportError, AttributeError, FileNotFoundError, ValueError) as exc:
            self.problems.raise_(f'type.{topic}', Level.ERROR, f'{topic}: cannot record type {type_name}: {exc}')
            return
        # best effort for streams: a recorder that falls behind must never hold up the loop's
        # publishers (exo_common.ros.MONITOR_QOS); latched state stays reliable. Reliable streams
        # keep all: with a bounded history a reader that stalls overwrites what it has not taken.
        complete = self.params['reliable'] and not latched
        qos = QoSProfile(history=HistoryPolicy.KEEP_ALL if complete else HistoryPolicy.KEEP_LAST,
                         depth=1 if latched else RECORD_DEPTH,
                         reliability=(ReliabilityPolicy.RELIABLE if latched or complete
                                      else ReliabilityPolicy.BEST_EFFORT),
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        write = self.recorder.write
        now_ns = self._now_ns

        def on_message(data: bytes) -> None:
            if not self._failed:
                try:
                    write(topic, data, now_ns())
                except (OSError, ValueError) as exc:
                    self._fail(exc)

        self.create_subscription(message_class, topic, on_message, qos, raw=True)

    def _discover(self) -> None:
        if not self._untyped:
            return
        for topic, types in self.get_topic_names_and_types():
            if topic in self._untyped and types:
                self._subscribe(topic, types[0], self._untyped.pop(topic))
                self.problems.clear(f'waiting.{topic}')

    def _fail(self, exc: Exception) -> None:
        self._failed = True
        self.problems.raise_('write', Level.ERROR, f'recording to {self.recorder.path} stopped: {exc}')
        self._publish_status()

    def _flush(self) -> None:
        if not self._failed and not self.recorder.closed:
            try:
                self.recorder.flush(sync=True)
            except (OSError, ValueError) as exc:
                self._fail(exc)

    def on_parameters_changed(self, changed: dict) -> None:
        if 'flush_period_s' in changed:
            self._flush_timer.cancel()
            self.destroy_timer(self._flush_timer)
            self._flush_timer = self.create_timer(changed['flush_period_s'], self._flush)

    def _publish_status(self) -> None:
        for topic in self._untyped:
            self.problems.raise_(f'waiting.{topic}', Level.WARN, f'{topic}: no publisher yet, not recorded')
        counts = self.recorder.counts
        self.publish_diagnostics([self.problems.summary(
            f'{NODE_NAME}: recording', ok_message=f'recording to {self.recorder.path}',
            file=str(self.recorder.path), messages=sum(counts.values()),
            silent_topics=','.join(sorted(t for t, n in counts.items() if n == 0)))])

    def shutdown_hook(self) -> None:
        try:
            self.recorder.close({'ended_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                                 'messages': sum(self.recorder.counts.values()),
                                 **{f'count:{t}': n for t, n in self.recorder.counts.items()}})
            self.get_logger().info(f'closed {self.recorder.path}')
        except (OSError, ValueError) as exc:
            self.get_logger().error(f'could not close {self.recorder.path}: {exc}')


def main():
    node_main(SessionRecorderNode)


if __name__ == '__main__':
    main()


__all__ = ['McapRecorder', 'SessionRecorderNode', 'main', 'DEFAULT_TOPICS']
