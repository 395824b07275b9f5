"""mujoco_sim node over real topics: device streams, bad commands, lockstep pacing."""
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState, TimeReference
from std_msgs.msg import Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from exo_common.joints import EMG_CHANNELS, JOINT_NAMES
from exo_common.ros import DIAGNOSTICS_QOS, LATCHED_QOS, STREAM_QOS
from exo_common.testing import wait_until
from exo_sim.mujoco_sim_node import MujocoSimNode


def start(ros, **params):
    params.setdefault('treadmill.follow_safety', False)
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    return ros.add_node(MujocoSimNode(context=ros.context, parameter_overrides=overrides))


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def command_messages(diagnostics):
    return [status.message for array in list(diagnostics) for status in array.status
            if status.name == 'mujoco_sim: commands']


def test_device_topics_rates_and_stamps(ros):
    joints = ros.collect(JointState, '/hw/joint_states')
    imu = ros.collect(Imu, '/hw/imu/pelvis_imu')
    emg = ros.collect(JointTrajectory, '/hw/emg')
    speed = ros.collect(Float64, '/hw/treadmill/speed')
    sim = start(ros, **{'treadmill.speed_kmh': 1.8})
    wait_until(lambda: len(joints) > 1500, 10.0, '1.5 s of joint states')
    assert list(joints[-1].name) == list(JOINT_NAMES)
    stamps = np.array([stamp_ns(m.header.stamp) for m in joints[-1000:]])
    imu_stamps = [stamp_ns(m.header.stamp) for m in list(imu)[-200:]]
    slips, not_sent = sim._slips, sim._samples_skipped
    gaps = np.diff(stamps)
    # Every sample is 1 ms after the previous one, on the grid. Longer gaps: the schedule
    # slipped or a sample was not sent (the node counts both; a machine that stalls makes
    # them), or the Python probe dropped one at 1 kHz.
    assert (gaps > 0).all() and (gaps % 1_000_000 == 0).all()
    assert np.count_nonzero(gaps != 1_000_000) <= slips + not_sent + 50
    assert abs(stamps[-1] * 1e-9 - time.time()) < 1.0     # real time: stamps near the wall clock
    imu_gaps = np.diff(imu_stamps)
    # 100 Hz, on the 1 ms grid; only a slip of the schedule makes a gap longer
    assert (imu_gaps % 1_000_000 == 0).all()
    assert np.count_nonzero(imu_gaps != 10_000_000) <= slips, (imu_gaps, slips)
    assert imu[-1].header.frame_id == 'pelvis_imu' and imu[-1].orientation_covariance[0] == -1.0
    assert imu[-1].linear_acceleration.z > 5.0
    assert list(emg[-1].joint_names) == list(EMG_CHANNELS) and len(emg[-1].points) == 20
    assert speed and speed[-1].data == pytest.approx(1.8 / 3.6)


@pytest.mark.parametrize('values, reason', [([1.0] * 5, 'expected 6'), ([float('nan')] + [5.0] * 5, 'nan')])
def test_bad_command_gives_zero_torque_and_diagnostic(ros, values, reason):
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    joints = ros.collect(JointState, '/hw/joint_states')
    commands = ros.publisher(Float64MultiArray, '/effort_controller/commands')
    node = start(ros, command_timeout_s=1.0)
    wait_until(lambda: any('no command' in m for m in command_messages(diagnostics)), 5.0,
               'a diagnostic about missing commands')
    good = Float64MultiArray(data=[30.0] * 6)
    deadline = time.monotonic() + 5.0
    while node.sim.truth().actuator_torque.min() < 25.0 and time.monotonic() < deadline:
        commands.publish(good)
        time.sleep(0.01)
    assert node.sim.truth().actuator_torque.min() > 25.0
    for _ in range(20):
        commands.publish(Float64MultiArray(data=values))
        time.sleep(0.01)
    wait_until(lambda: any(reason in m for m in command_messages(diagnostics)), 5.0, f'diagnostic {reason!r}')
    count = len(joints)
    wait_until(lambda: len(joints) > count + 100, 5.0, 'more joint states')
    assert np.abs(np.array(joints[-1].effort)).max() < 1.0    # measured torque: zero + noise


def test_stale_commands_give_zero_torque(ros):
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    commands = ros.publisher(Float64MultiArray, '/effort_controller/commands')
    node = start(ros, command_timeout_s=0.05)
    for _ in range(50):
        commands.publish(Float64MultiArray(data=[20.0] * 6))
        time.sleep(0.005)
    wait_until(lambda: any('timeout 0.05' in m for m in command_messages(diagnostics)), 5.0, 'stale diagnostic')
    time.sleep(0.1)
    assert np.abs(node.sim.truth().actuator_torque).max() < 0.5


def test_lockstep_waits_for_each_command(ros):
    commands = ros.publisher(Float64MultiArray, '/effort_controller/commands')
    answered = []
    answering = [True]

    def answer(msg):
        if answering[0]:
            answered.append(stamp_ns(msg.header.stamp))
            commands.publish(Float64MultiArray(data=[0.0] * 6))

    with ros._lock:
        ros.node.create_subscription(JointState, '/hw/joint_states', answer, 10)
    clock = ros.collect(Clock, '/clock')
    # lock-step waits for the commands of an enabled supervisor only
    ros.publisher(String, '/safety_supervisor/state', LATCHED_QOS).publish(String(data='ENABLED'))
    node = start(ros, pacing='lockstep', **{'lockstep.wait_s': 1.0, 'command_timeout_s': 0.5})
    wait_until(lambda: len(answered) > 300, 20.0, '300 lock-step cycles')
    stamps = np.array(answered[5:300])
    assert (np.diff(stamps) == 1_000_000).all()                  # no sample lost, none skipped
    assert clock and stamp_ns(clock[-1].clock) >= stamps[-1]
    steps_before = node.sim.steps
    answering[0] = False
    time.sleep(0.5)                                              # nobody answers: it waits
    assert node.sim.steps - steps_before <= 2


def test_treadmill_runs_only_while_the_supervisor_is_enabled(ros):
    speed = ros.collect(Float64, '/hw/treadmill/speed')
    state = ros.publisher(String, '/safety_supervisor/state', LATCHED_QOS)
    start(ros, **{'treadmill.speed_kmh': 1.8, 'treadmill.follow_safety': True})
    wait_until(lambda: len(speed) > 5, 5.0, 'treadmill speed')
    assert speed[-1].data == 0.0, 'no belt motion before the exoskeleton is enabled'
    state.publish(String(data='ENABLED'))
    wait_until(lambda: speed[-1].data == pytest.approx(1.8 / 3.6), 5.0, 'belt at its set speed')
    state.publish(String(data='FAULT'))
    wait_until(lambda: speed[-1].data == 0.0, 5.0, 'belt stopped after a fault')


def test_a_control_rate_the_physics_step_cannot_divide_is_refused(ros):
    from exo_common.params import ConfigError
    with pytest.raises(ConfigError, match='divided by a whole number'):
        start(ros, control_rate_hz=1500.0)   # 1 ms physics step: samples would come at 1 kHz


def test_the_runner_picks_a_physics_step_every_control_rate_divides():
    from exo_common.runner import physics_timestep
    for rate, step in ((250.0, 0.001), (500.0, 0.001), (1000.0, 0.001), (1500.0, 1 / 1500), (2000.0, 0.0005)):
        assert physics_timestep(rate) == pytest.approx(step)
        steps = 1.0 / (rate * physics_timestep(rate))
        assert steps == pytest.approx(round(steps))


@pytest.mark.parametrize('rate_hz, stall_periods', [(1000.0, (1.5, 4.5)), (250.0, (1.5, 2.6))])
def test_after_a_stall_the_loop_gets_the_newest_sample_not_a_backlog(ros, rate_hz, stall_periods):
    """A stall of the loop (here its own subscriber blocking, as a machine stall would) must not
    leave it answering old samples. A short one: the samples that came due meanwhile are not
    sent, they could not be answered in time. One more than MAX_LAG_PERIODS long: the schedule
    slips past them, and the simulated world waits instead of running on the last command.
    Either way the next sample goes out in time to be answered, and stamps stay on the wall
    clock. Answering the backlog one by one kept a 1 kHz loop late for tens of periods after
    each stall; at 250 Hz a stall of 6.5 ms once made the device clock fall behind for good."""
    from exo_common.ros import MONITOR_QOS, ExoNode
    period_ms = 1000.0 / rate_hz
    held_off = ros.collect(TimeReference, '/mujoco_sim/held_off', MONITOR_QOS)
    sim = start(ros, control_rate_hz=rate_hz)
    received = []
    stalls = {stall: [] for stall in stall_periods}
    loop = ros.add_node(ExoNode('stalling_loop', [], context=ros.context))
    answer = loop.create_local_publisher(Float64MultiArray, '/effort_controller/commands', STREAM_QOS)
    zero = Float64MultiArray(data=[0.0] * len(JOINT_NAMES))

    def on_sample(msg):
        received.append((stamp_ns(msg.header.stamp), time.time_ns()))
        if len(received) % 100 == 0:
            stall = stall_periods[(len(received) // 100) % 2]
            stalls[stall].append(received[-1][0])
            time.sleep(stall * period_ms * 1e-3)
        else:
            time.sleep(0.0004)  # the controller's work
        answer.publish(zero)

    loop.create_local_subscription(JointState, '/hw/joint_states', on_sample, STREAM_QOS)
    wait_until(lambda: min(len(v) for v in stalls.values()) >= 4, 20.0, 'eight stalls of the loop')
    samples = np.array(received)
    for stall in stall_periods:
        # the first sample sent after the stall could still be answered in time, going by the
        # 0.4 ms the answers took (a backlog: late by most of the stall)
        after = np.flatnonzero(np.isin(samples[:-1, 0], stalls[stall][:-1])) + 1
        lateness_ms = (samples[after, 1] - samples[after, 0]) / 1e6
        assert (lateness_ms < period_ms - 0.2).all(), (stall, lateness_ms)
    lateness_ms = (samples[:, 1] - samples[:, 0]) / 1e6
    assert np.median(lateness_ms) < 0.5 * period_ms   # the device clock stays on the wall clock
    # Each long stall slipped the schedule. A short one need not cost a sample: the sample due
    # during it may still be answerable when the loop is back (checked above: in time or unsent).
    assert sim._slips >= len(stalls[stall_periods[1]]) - 1
    # The physics thread saw every stall (it slept in its own subscriber) as time off the CPU
    # while it answered: reported on ~/held_off, start and end on the wall clock.
    wait_until(lambda: len(held_off) >= 6, 5.0, 'held-off reports of the stalls')
    spans = [(stamp_ns(m.header.stamp), stamp_ns(m.time_ref), m.source) for m in list(held_off)]
    received_at = dict(received)
    for stall in stall_periods:
        for stamp in stalls[stall][:-1]:
            start_ns = received_at[stamp]
            assert any(source == 'answer and device work' and begin <= start_ns + 200_000
                       and end >= start_ns + 0.9 * stall * period_ms * 1e6
                       for begin, end, source in spans), (stall, stamp)


class _CountingExecutor:
    def __init__(self):
        self.calls = []

    def spin_once(self, timeout_sec):
        self.calls.append(timeout_sec)
        time.sleep(timeout_sec)


def _physics_thread_state(executor, served_ago_s):
    import threading
    from types import SimpleNamespace
    return SimpleNamespace(_executor=executor, _served_at=time.monotonic() - served_ago_s,
                           _stop=threading.Event(), _command_arrived=threading.Condition())


def test_one_answer_slowed_by_a_stall_does_not_hold_back_the_samples_after_it():
    """Whether a late sample is still sent goes by the loop's usual answer time: one answer that
    a stall of the machine stretched to 6 ms must not make a sample 0.45 ms late look
    unanswerable while the loop catches up (0.25 ms answers; a mean would have said 0.61 ms)."""
    import collections
    import threading
    from types import SimpleNamespace

    from exo_sim import mujoco_sim_node as sim_node
    node = SimpleNamespace(_responses=collections.deque(maxlen=sim_node.RESPONSES_KEPT), _response_s=0.0,
                           _sample_sent_at=None, _command_arrived=threading.Condition(),
                           _latest_command=None, _command_count=0, sim=SimpleNamespace(time=0.0),
                           _control_period_s=0.001)
    command = Float64MultiArray(data=[0.0] * len(JOINT_NAMES))
    for response in [0.00025] * 10 + [0.006] + [0.00025] * 2:
        node._sample_sent_at = time.monotonic() - response
        sim_node.MujocoSimNode._on_command(node, command)
    assert 0.00025 <= node._response_s < 0.0003
    due = time.monotonic() - 0.00045
    assert sim_node.MujocoSimNode._answerable(node, due)
    assert not sim_node.MujocoSimNode._answerable(node, due - 0.0004)  # 0.85 ms late: cannot be


def test_a_physics_loop_behind_schedule_still_serves_callbacks():
    """Driving the executor from the physics thread: with no idle time left (behind schedule) the
    callbacks must still run now and then, or the supervisor sees its pelvis IMU go stale."""
    from exo_sim import mujoco_sim_node as sim_node
    executor = _CountingExecutor()
    state = _physics_thread_state(executor, served_ago_s=0.0)
    sim_node.MujocoSimNode._idle_until(state, time.monotonic() - 0.001)
    assert executor.calls == []                      # served just now: the loop catches up first
    state._served_at -= 2 * sim_node.CALLBACKS_BEHIND_S
    sim_node.MujocoSimNode._idle_until(state, time.monotonic() - 0.001)
    assert executor.calls == [0.0] * sim_node.CALLBACKS_PER_ROUND
    assert time.monotonic() - state._served_at < sim_node.CALLBACKS_BEHIND_S


def test_idle_time_goes_to_callbacks_and_the_sample_is_not_late_for_it():
    from exo_sim import mujoco_sim_node as sim_node
    executor = _CountingExecutor()
    state = _physics_thread_state(executor, served_ago_s=1.0)
    deadline = time.monotonic() + 0.003
    sim_node.MujocoSimNode._idle_until(state, deadline)
    assert executor.calls and all(t <= 0.003 - sim_node.SPIN_MARGIN_S for t in executor.calls)
    assert time.monotonic() >= deadline
