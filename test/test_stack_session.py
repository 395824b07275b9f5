"""The whole stack in a simulated session, brought up by `exo-gait sim` as a user would.

One real-time session serves several checks (CI time matters): the patient walks, every
contract topic arrives at its rate, no fault is raised, parameters work from another process as
rqt_reconfigure uses them, and an e-stop during walking zeroes the actuator command and the
runner reports it.
"""
import math
import os
import pathlib
import subprocess
import sys
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters, SetParameters
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from exo_common.joints import IMU_FRAMES
from exo_common.ros import DIAGNOSTICS_QOS, LATCHED_QOS
from exo_common.testing import wait_until

WALK_S = 20.0
RATE_WINDOW_S = 4.0
# topic -> (type, expected messages per second)
RATES = {
    '/hw/joint_states': (JointState, 1000.0), '/joint_states': (JointState, 1000.0),
    '/gait_controller/effort_request': (JointState, 1000.0),
    '/effort_controller/commands': (Float64MultiArray, 1000.0),
    '/hw/emg': (JointTrajectory, 100.0), '/emg/envelope': (JointState, 100.0),
    **{f'/hw/imu/{frame}': (Imu, 100.0) for frame in IMU_FRAMES},
    **{f'/imu/{frame}': (Imu, 100.0) for frame in IMU_FRAMES},
}


@pytest.fixture(scope='module')
def session(tmp_path_factory):
    output = tmp_path_factory.mktemp('session')
    process = subprocess.Popen(
        [sys.executable, '-m', 'exo_common.cli', 'sim', '--duration', '120', '--headless',
         '--output', str(output), '--no-report', '--patient', 'stroke_left_hemiparesis'],
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

    # every contract topic at its rate
    received = {topic: ros.collect(msg_type, topic) for topic, (msg_type, _) in RATES.items()}
    time.sleep(1.0)
    counts_before = {topic: len(messages) for topic, messages in received.items()}
    time.sleep(RATE_WINDOW_S)
    for topic, (_, rate) in RATES.items():
        measured = (len(received[topic]) - counts_before[topic]) / RATE_WINDOW_S
        assert measured >= 0.9 * rate, f'{topic}: {measured:.0f}/s, expected {rate:.0f}/s'
    for messages in received.values():
        messages.clear()

    # the patient walks: hip flexion swings through a gait-like range on both sides
    joint_states = ros.collect(JointState, '/joint_states')
    time.sleep(WALK_S - RATE_WINDOW_S - 1.0)
    positions = [msg.position for msg in joint_states]
    assert len(positions) > 1000
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

    # e-stop during walking: actuator command goes to zero and stays there
    commands = ros.collect(Float64MultiArray, '/effort_controller/commands')
    response = ros.call(Trigger, '/safety_supervisor/estop', Trigger.Request())
    assert response.success
    wait_until(lambda: states[-1].data == 'FAULT', 2.0, 'FAULT after e-stop')
    time.sleep(0.3)
    count = len(commands)
    time.sleep(0.3)
    after = commands[count:]
    assert after, 'the supervisor keeps publishing the safe command'
    assert all(all(v == 0.0 for v in msg.data) for msg in after)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1, out
    assert 'FAULT' in out
    assert (output / 'safety_faults.jsonl').is_file()
    assert 'estop' in (output / 'safety_faults.jsonl').read_text().lower()


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
    broken.write_text(broken.read_text().replace('ros__parameters:', 'ros__parameters:\n    assistence_typo: 3.0', 1))
    done = subprocess.run([sys.executable, '-m', 'exo_common.cli', 'sim', '--config-dir', str(config),
                           '--output', str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'gait_controller.yaml' in done.stderr and 'assistence_typo' in done.stderr
    (config / 'safety_supervisor.yaml').write_text('safety_supervisor: [not, a, mapping')
    done = subprocess.run([sys.executable, '-m', 'exo_common.cli', 'sim', '--config-dir', str(config),
                           '--output', str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and 'safety_supervisor.yaml' in done.stderr
