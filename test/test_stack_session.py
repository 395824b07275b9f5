"""The whole stack in a simulated session, brought up by `exo-gait sim` as a user would.

One session serves several checks (CI time matters): the patient walks, every contract topic
arrives at its rate, no fault is raised, parameters work from another process as
rqt_reconfigure uses them, and an e-stop during walking zeroes the actuator command and the
runner reports it. The session runs lock-step on simulated time (the runner's default), so
rates are measured on the messages' stamps. A healthy wearer in transparent mode: the
scenario that must run cleanly whatever the tuning of guidance for impaired patients.
"""
import json
import math
import pathlib
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from exo_common.joints import IMU_FRAMES
from exo_common.ros import DIAGNOSTICS_QOS, LATCHED_QOS, MONITOR_QOS
from exo_common.testing import wait_until

WALK_S = 20.0
PROBE_QOS = MONITOR_QOS
RATE_WINDOW_S = 4.0
# topic -> (type, expected messages per second)
RATES = {
    '/hw/joint_states': (JointState, 1000.0), '/joint_states': (JointState, 1000.0),
    '/gait_controller/effort_request': (JointState, 1000.0),
    '/safety_supervisor/command_stamped': (JointState, 1000.0),
    '/hw/emg': (JointTrajectory, 100.0), '/emg/envelope': (JointState, 100.0),
    **{f'/hw/imu/{frame}': (Imu, 100.0) for frame in IMU_FRAMES},
    **{f'/imu/{frame}': (Imu, 100.0) for frame in IMU_FRAMES},
}


@pytest.fixture(scope='module')
def session(tmp_path_factory):
    output = tmp_path_factory.mktemp('session')
    process = subprocess.Popen(
        [sys.executable, '-m', 'exo_common.cli', 'sim', '--duration', '300', '--headless',
         '--output', str(output), '--no-report', '--patient', 'healthy', '--mode', 'transparent'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield process, output
    if process.poll() is None:
        process.terminate()
        process.communicate(timeout=20)


def test_walking_session_rates_parameters_and_estop(session, ros):
    process, output = session
    states = ros.collect(String, '/safety_supervisor/state', LATCHED_QOS)
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    wait_until(lambda: states and states[-1].data == 'ENABLED', 90.0, 'the runner enabling the supervisor')

    # every contract topic at its rate, on simulated time (the messages' own stamps)
    # best effort, deep queues: this probe must not slow the stack down, and the rates are read
    # from the stamp spacing, which the probe's own losses do not change
    received = {topic: ros.collect(msg_type, topic, PROBE_QOS, raw=True) for topic, (msg_type, _) in RATES.items()}
    commands = ros.collect(Float64MultiArray, '/effort_controller/commands', PROBE_QOS)
    try:
        wait_until(lambda: all(len(m) > 20 for m in received.values()), 30.0, 'every contract topic')
    except TimeoutError:
        pytest.fail(f'contract topics: messages received {({t: len(m) for t, m in received.items()})}')
    window_start = {topic: len(messages) for topic, messages in received.items()}
    commands_start = len(commands)
    _wait_running(process, lambda: _raw_span(received['/hw/joint_states'][window_start['/hw/joint_states']:]) >= RATE_WINDOW_S,
                  120.0, f'{RATE_WINDOW_S} s of simulated time')
    for topic, (_, rate) in RATES.items():
        window = received[topic][window_start[topic]:]
        assert len(window) > 0.5 * rate * RATE_WINDOW_S, f'{topic}: only {len(window)} messages'
        measured = 1.0 / float(np.median(np.diff([_raw_seconds(m) for m in window])))
        assert measured == pytest.approx(rate, rel=0.05), f'{topic}: {measured:.0f}/s, expected {rate:.0f}/s'
    samples = len(received['/hw/joint_states']) - window_start['/hw/joint_states']
    assert len(commands) - commands_start >= 0.8 * samples, 'an actuator command for every sample'
    for messages in received.values():  # 14 streams, 5,000 messages/s: more than a probe should take
        ros.stop_collecting(messages)

    # the patient walks: hip flexion swings through a gait-like range on both sides
    joint_states = ros.collect(JointState, '/joint_states', PROBE_QOS)
    _wait_running(process, lambda: _span(joint_states) >= WALK_S - RATE_WINDOW_S, 300.0, 'walking')
    positions = [msg.position for msg in joint_states]
    for hip in (0, 3):
        hip_range = max(p[hip] for p in positions) - min(p[hip] for p in positions)
        assert hip_range > math.radians(20), f'hip {hip} moved only {math.degrees(hip_range):.1f} deg'
    assert states[-1].data == 'ENABLED'
    errors = [s for d in diagnostics for s in d.status if s.level[0] >= 2]
    assert not errors, [f'{s.name}: {s.message}' for s in errors[:5]]

    # parameters as rqt_reconfigure uses them, from this (another) process
    listed = ros.call(ListParameters, '/gait_controller/list_parameters', ListParameters.Request())
    assert 'assistance.left_percent' in listed.result.names
    described = ros.call(DescribeParameters, '/gait_controller/describe_parameters',
                         DescribeParameters.Request(names=['assistance.left_percent']))
    descriptor = described.descriptors[0]
    assert '%' in descriptor.description and descriptor.floating_point_range
    assert descriptor.floating_point_range[0].to_value == 100.0
    refused = ros.call(SetParameters, '/gait_controller/set_parameters', SetParameters.Request(
        parameters=[_double('assistance.left_percent', 150.0)]))
    assert not refused.results[0].successful and refused.results[0].reason
    accepted = ros.call(SetParameters, '/gait_controller/set_parameters', SetParameters.Request(
        parameters=[_double('assistance.left_percent', 40.0)]))
    assert accepted.results[0].successful
    value = ros.call(GetParameters, '/gait_controller/get_parameters',
                     GetParameters.Request(names=['assistance.left_percent']))
    assert value.values[0].double_value == 40.0
    # a valid change takes effect on the topics: the therapist speeds the belt up
    belt = ros.collect(Float64, '/hw/treadmill/speed', PROBE_QOS)
    faster = ros.call(SetParameters, '/mujoco_sim/set_parameters', SetParameters.Request(
        parameters=[_double('treadmill.speed_kmh', 2.5)]))
    assert faster.results[0].successful
    _wait_running(process, lambda: belt and belt[-1].data > 2.45 / 3.6, 60.0, 'the belt at 2.5 km/h')

    # e-stop during walking: actuator command goes to zero and stays there
    commands.clear()
    response = ros.call(Trigger, '/safety_supervisor/estop', Trigger.Request())
    assert response.success
    wait_until(lambda: states[-1].data == 'FAULT', 5.0, 'FAULT after e-stop')
    out, _ = process.communicate(timeout=60)  # the runner ends a session in FAULT
    zero = [all(v == 0.0 for v in msg.data) for msg in commands]
    assert any(zero), 'no zero command after the e-stop'
    first = zero.index(True)
    assert first > 0, 'the commands were zero before the e-stop'
    assert all(zero[first:]), 'a non-zero command after the e-stop'
    assert process.returncode == 1, out
    assert 'FAULT' in out
    assert (output / 'safety_faults.jsonl').is_file()
    assert 'estop' in (output / 'safety_faults.jsonl').read_text().lower()
    # strides counted by the gait analyzer over the walk (about 1.1 s per stride at 2 km/h)
    summary = json.loads((output / 'summary.json').read_text())
    assert summary['strides'] >= 0.6 * WALK_S / 1.2, summary
    assert summary['outcome'] == 'fault' and summary['stopped_by_signal'] is False


def _wait_running(process, predicate, timeout: float, what: str) -> None:
    """wait_until, failing at once with the runner's output if the session ends meanwhile."""
    wait_until(lambda: predicate() or process.poll() is not None, timeout, what)
    if process.poll() is not None:
        pytest.fail(f'the session ended while waiting for {what}:\n{process.communicate()[0][-3000:]}')


def _raw_seconds(serialized: bytes) -> float:
    """header.stamp of a serialized message that starts with a std_msgs/Header (CDR: 4 bytes
    of encapsulation, then sec int32 and nanosec uint32)."""
    sec, nanosec = struct.unpack_from('<iI', serialized, 4)
    return sec + nanosec * 1e-9


def _raw_span(messages) -> float:
    return _raw_seconds(messages[-1]) - _raw_seconds(messages[0]) if len(messages) > 1 else 0.0


def _span(messages) -> float:
    """Simulated seconds covered by stamped messages."""
    if len(messages) < 2:
        return 0.0
    first, last = messages[0].header.stamp, messages[-1].header.stamp
    return (last.sec - first.sec) + (last.nanosec - first.nanosec) * 1e-9


def _double(name: str, value: float) -> ParameterMsg:
    return ParameterMsg(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))


@pytest.mark.parametrize('args, words', [
    (['--patient', 'unicorn'], ['unknown patient profile', 'unicorn']),
    (['--speed', '9.0'], ['treadmill.speed_kmh', 'maximum']),
])
def test_bad_session_settings_stop_startup_with_a_clear_message(args, words, tmp_path):
    done = subprocess.run([sys.executable, '-m', 'exo_common.cli', 'sim', '--output', str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    for word in words:
        assert word in done.stderr


def test_malformed_config_file_names_the_file_and_key(tmp_path):
    config = tmp_path / 'config'
    source = pathlib.Path(__file__).resolve().parents[1] / 'config'
    subprocess.run(['cp', '-r', str(source) + '/.', str(config)], check=True)
    broken = config / 'gait_controller.yaml'
    original = broken.read_text()
    broken.write_text(original.replace('ros__parameters:', 'ros__parameters:\n    assistence_typo: 3.0', 1))
    done = subprocess.run([sys.executable, '-m', 'exo_common.cli', 'sim', '--config-dir', str(config),
                           '--output', str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'gait_controller.yaml' in done.stderr and 'assistence_typo' in done.stderr
    broken.write_text(original)
    (config / 'safety_supervisor.yaml').write_text('safety_supervisor: [not, a, mapping')
    done = subprocess.run([sys.executable, '-m', 'exo_common.cli', 'sim', '--config-dir', str(config),
                           '--output', str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and 'safety_supervisor.yaml' in done.stderr


def test_a_ros_teardown_that_hangs_ends_the_runner_after_the_session_is_written(tmp_path):
    """rclpy's teardown once deadlocked inside Fast DDS after a session: the runner must not
    hang with it. Its files are written before it leaves ROS, and a teardown that does not end
    in time ends the process with SIGALRM and every thread's stack on stderr."""
    import signal
    code = ('import time, rclpy\n'
            'from exo_common import session\n'
            'session.TEARDOWN_TIMEOUT_S = 2\n'
            'monitor = session.SessionMonitor()\n'
            'rclpy.shutdown = lambda **kwargs: time.sleep(60)\n'
            'monitor.close()\n')
    started = time.monotonic()
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGALRM, done.stderr[-2000:]
    assert time.monotonic() - started < 30
    assert 'Timeout' in done.stderr and 'close' in done.stderr
