"""gait_controller over real topics: safety gating, re-sync, bad input, parameters."""
import math

import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String

from exo_common.joints import JOINT_NAMES
from exo_common.ros import DIAGNOSTICS_QOS, LATCHED_QOS, sec_to_stamp
from exo_common.testing import wait_until
from exo_control.gait_controller_node import GaitControllerNode

POSTURE = [0.3, 0.2, 0.0, 0.1, 0.3, 0.05]


@pytest.fixture
def rig(ros):
    node = ros.add_node(GaitControllerNode(context=ros.context))
    requests = ros.collect(JointState, '/gait_controller/effort_request')
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    joints = ros.publisher(JointState, '/joint_states')
    state = ros.publisher(String, '/safety_supervisor/state', LATCHED_QOS)
    wait_until(lambda: joints.get_subscription_count() > 0, 5.0, 'controller subscription')
    clock = node.get_clock()

    def send(position=POSTURE, velocity=(0.0,) * 6, names=JOINT_NAMES, age=0.0, count=1):
        for _ in range(count):
            msg = JointState(name=list(names), position=list(position), velocity=list(velocity))
            msg.header.stamp = sec_to_stamp(clock.now().nanoseconds * 1e-9 - age)
            joints.publish(msg)
            sent = len(requests)
            wait_until(lambda: len(requests) > sent, 2.0, 'effort request')
        return requests[-1]

    return node, send, state, requests, diagnostics


def messages(diagnostics):
    return [s.message for array in diagnostics for s in array.status]


def test_zero_until_enabled_then_ramped_in_from_the_measured_posture(rig):
    node, send, state, requests, _ = rig
    request = send(count=5)
    assert list(request.effort) == [0.0] * 6
    assert list(request.name) == list(JOINT_NAMES)
    state.publish(String(data='ENABLED'))
    wait_until(lambda: node.controller.enabled, 2.0, 'enabled')
    request = send()
    assert list(request.position) == pytest.approx(POSTURE, abs=1e-6)  # re-synchronised
    assert max(abs(e) for e in request.effort) < 1.0                      # ramping in from zero
    request = send(count=20)
    assert any(abs(e) > 0.0 for e in request.effort)
    state.publish(String(data='FAULT'))
    wait_until(lambda: not node.controller.enabled, 2.0, 'disabled')
    moved = [0.1, 0.5, -0.1, 0.4, 0.1, 0.1]
    assert list(send(moved).effort) == [0.0] * 6
    state.publish(String(data='ENABLED'))
    wait_until(lambda: node.controller.enabled, 2.0, 'enabled')
    assert list(send(moved).position) == pytest.approx(moved, abs=1e-6)


def test_request_carries_the_joint_states_stamp(rig):
    _, send, _, requests, _ = rig
    request = send()
    assert request.header.stamp.sec > 0


@pytest.mark.parametrize('kwargs, text', [
    ({'position': [0.1, math.nan, 0, 0, 0, 0]}, 'position is nan'),
    ({'age': 1.0}, 'out-of-order'),  # older than the previous sample: order is checked first
    ({'names': ['a', 'b', 'c', 'd', 'e', 'f']}, 'expected joint names'),
    ({'position': [0.1] * 4}, 'expected 6'),
])
def test_bad_input_gives_zero_request_and_a_diagnostic(rig, kwargs, text):
    node, send, state, requests, diagnostics = rig
    state.publish(String(data='ENABLED'))
    wait_until(lambda: node.controller.enabled, 2.0, 'enabled')
    send(count=50)
    request = send(**kwargs)
    assert list(request.effort) == [0.0] * 6
    wait_until(lambda: any(text in m for m in messages(diagnostics)), 2.0, f'diagnostic "{text}"')


def test_parameters_live_and_refused_with_a_reason(ros, rig):
    node, *_ = rig
    assistance = ros.collect(Float64MultiArray, '/gait_controller/assistance_per_joint', LATCHED_QOS)

    def set_param(name, kind, **value):
        request = SetParameters.Request(parameters=[Parameter(
            name=name, value=ParameterValue(type=kind, **value))])
        return ros.call(SetParameters, '/gait_controller/set_parameters', request).results[0]

    result = set_param('assistance.left_percent', ParameterType.PARAMETER_DOUBLE, double_value=40.0)
    assert result.successful
    wait_until(lambda: assistance and assistance[-1].data[0] == pytest.approx(40.0), 2.0, 'assistance 40 %')
    assert assistance[-1].data[3] == pytest.approx(100.0)
    refused = set_param('mode', ParameterType.PARAMETER_STRING, string_value='fly')
    assert not refused.successful and 'transparent' in refused.reason
    refused = set_param('emg.threshold', ParameterType.PARAMETER_DOUBLE, double_value=0.9)
    assert not refused.successful and 'emg.full_activation' in refused.reason
    refused = set_param('assistance.right_percent', ParameterType.PARAMETER_DOUBLE, double_value=150.0)
    assert not refused.successful and refused.reason
    assert node.params['mode'] == 'guidance'


def test_transparent_mode_publishes_no_assistance(ros, rig):
    """0 % = transparent: the session's progress line, report and progress store read this."""
    assistance = ros.collect(Float64MultiArray, '/gait_controller/assistance_per_joint', LATCHED_QOS)

    def set_mode(mode):
        request = SetParameters.Request(parameters=[Parameter(
            name='mode', value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=mode))])
        assert ros.call(SetParameters, '/gait_controller/set_parameters', request).results[0].successful

    set_mode('transparent')
    wait_until(lambda: assistance and list(assistance[-1].data) == [0.0] * 6, 2.0, 'no assistance')
    set_mode('guidance')
    wait_until(lambda: assistance and min(assistance[-1].data) > 0.0, 2.0, 'the bounds again')
