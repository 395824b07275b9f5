"""safety_supervisor through real topics and services (node in-process, RosHarness probe).

Every fault is injected as a message on the real input topic and asserted on the command the
node publishes for it. Watchdog ages are generous here (timing figures live in
bench/bench_safety.py) except where a watchdog itself is under test.
"""
import math
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from exo_common.description import joint_limits
from exo_common.joints import JOINT_NAMES
from exo_common.ros import DIAGNOSTICS_QOS, LATCHED_QOS
from exo_common.testing import wait_until
from exo_safety.events import read_events
from exo_safety.safety_supervisor_node import (COMMAND_TOPIC, PELVIS_IMU_TOPIC, REQUEST_TOPIC,
                                               STAMPED_TOPIC, STATE_TOPIC, SafetySupervisorNode)
from exo_safety.stand_in import imu_msg, joint_state_msg, request_msg

LIMITS = joint_limits()
POSTURE = [0.1] * 6
ZERO = [0.0] * 6
TORQUE = [5.0] * 6
GENEROUS = {'watchdog.joint_states_max_age': 1.0, 'watchdog.imu_max_age': 1.0,
            'watchdog.request_max_age': 1.0, 'engage.ramp_time': 0.0, 'safe_mode': 'zero',
            'effort.rate_limit': 100000.0, 'velocity.persistence': 0.0}


class Rig:
    def __init__(self, ros, tmp_path, **overrides):
        self.ros = ros
        self.log_path = tmp_path / 'faults.jsonl'
        values = {**GENEROUS, 'fault_log.path': str(self.log_path), **overrides}
        self.node = ros.add_node(SafetySupervisorNode(
            context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()]))
        self.stamped = ros.collect(JointState, STAMPED_TOPIC)
        self.commands = ros.collect(Float64MultiArray, COMMAND_TOPIC)
        self.diagnostics = ros.collect(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self.states = ros.collect(String, STATE_TOPIC, LATCHED_QOS)
        self.joint_pub = ros.publisher(JointState, '/joint_states')
        self.imu_pub = ros.publisher(Imu, PELVIS_IMU_TOPIC)
        self.request_pub = ros.publisher(JointState, REQUEST_TOPIC)
        for publisher in (self.joint_pub, self.imu_pub, self.request_pub, self.node._stamped_pub,
                          self.node._command_pub):
            wait_until(lambda: publisher.get_subscription_count() > 0, 5.0, 'matched endpoints')
        wait_until(lambda: self.states, 5.0, 'latched state')

    @property
    def state(self):
        return self.states[-1].data

    def now(self):
        return self.ros.node.get_clock().now().nanoseconds * 1e-9

    def command_for(self, stamp: float, timeout: float = 2.0) -> list:
        """The command the node published for the message stamped `stamp`."""
        def find():
            for msg in reversed(self.stamped):
                if abs(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - stamp) < 1e-6:  # float seconds near 1.8e9 carry ~0.2 us
                    return list(msg.effort)
            return None
        wait_until(lambda: find() is not None, timeout, f'a command stamped {stamp}')
        return find()

    def sensors(self, position=POSTURE, velocity=ZERO, **imu) -> float:
        stamp = self.now()
        self.joint_pub.publish(joint_state_msg(stamp, position, velocity))
        self.imu_pub.publish(imu_msg(stamp, **imu))
        return stamp

    def cycle(self, effort=TORQUE, reference=POSTURE, **sensors) -> list:
        self.sensors(**sensors)
        time.sleep(0.002)
        stamp = self.now()
        self.request_pub.publish(request_msg(stamp, effort, reference))
        return self.command_for(stamp)

    def call(self, name, request=None):
        if name == 'enable':
            return self.ros.call(SetBool, '/safety_supervisor/enable', SetBool.Request(data=request))
        return self.ros.call(Trigger, f'/safety_supervisor/{name}', Trigger.Request())

    def engage(self):
        self.cycle()
        response = self.call('enable', True)
        assert response.success, response.message
        assert self.cycle() == TORQUE
        wait_until(lambda: self.state == 'ENABLED', 2.0, 'ENABLED')

    def fault_events(self):
        return [status for msg in self.diagnostics for status in msg.status
                if status.name == 'safety_supervisor: fault']

    def logged(self, kind='fault'):
        return [event for event in read_events(self.log_path) if event['kind'] == kind]


@pytest.fixture
def rig(ros, tmp_path):
    return Rig(ros, tmp_path)


def test_walks_through_enable_engage_disable(rig):
    assert rig.state == 'DISABLED'
    assert rig.cycle() == ZERO
    rig.call('enable', True)
    assert rig.cycle(reference=[0.6] * 6) == ZERO  # reference far from the posture: no torque
    assert rig.cycle() == TORQUE
    assert rig.call('enable', False).success
    wait_until(lambda: rig.state == 'DISABLED', 2.0, 'DISABLED')
    assert rig.cycle() == ZERO
    assert [e['code'] for e in rig.logged('operator')] == ['enable', 'disable']


def _beyond(joint, side):
    position = list(POSTURE)
    limit = LIMITS[JOINT_NAMES[joint]]
    position[joint] = limit.upper + 0.1 if side > 0 else limit.lower - 0.1
    return position


def _violation(kind):
    """(sensor keyword arguments, request effort, expected fault code)"""
    fast = list(ZERO)
    fast[1] = LIMITS[JOINT_NAMES[1]].velocity + 1.0
    return {
        'position': ({'position': _beyond(2, +1)}, TORQUE, 'POSITION_LIMIT'),
        'velocity': ({'velocity': fast}, TORQUE, 'VELOCITY_LIMIT'),
        'tilt': ({'orientation': (math.sin(0.5), 0.0, 0.0, math.cos(0.5))}, TORQUE, 'TRUNK_TILT'),
        'fall': ({'angular_velocity': (6.0, 0.0, 0.0)}, TORQUE, 'FALL'),
        'sensor_nan': ({'position': [math.nan] + POSTURE[1:]}, TORQUE, 'SENSOR_NOT_FINITE'),
        'imu_inf': ({'angular_velocity': (math.inf, 0.0, 0.0)}, TORQUE, 'SENSOR_NOT_FINITE'),
        'request_nan': ({}, [5.0, math.nan, 5.0, 5.0, 5.0, 5.0], 'REQUEST_NOT_FINITE'),
    }[kind]


@pytest.mark.parametrize('kind', ['position', 'velocity', 'tilt', 'fall', 'sensor_nan', 'imu_inf',
                                  'request_nan'])
def test_each_fault_through_real_topics_gives_the_safe_command(rig, kind):
    rig.engage()
    sensors, effort, code = _violation(kind)
    if sensors:
        stamp = rig.sensors(**sensors)
    else:
        stamp = rig.now()
        rig.request_pub.publish(request_msg(stamp, effort, POSTURE))
    assert rig.command_for(stamp) == ZERO
    wait_until(lambda: rig.state == 'FAULT', 2.0, 'FAULT')
    wait_until(lambda: rig.logged(), 2.0, 'a fault log line')
    assert rig.cycle() == ZERO  # latched
    (event,) = rig.fault_events()
    values = {kv.key: kv.value for kv in event.values}
    assert values['code'] == code and event.level == b'\x02'
    assert {'joint', 'value', 'limit', 'ros_time', 'steady_time', 'sequence'} <= set(values)
    (logged,) = rig.logged()
    assert logged['code'] == code and logged['sequence'] == int(values['sequence'])
    assert 1 <= len(logged['history']) <= 50


def test_estop_latches_and_reset_is_refused_while_the_fault_persists(rig):
    rig.engage()
    assert rig.call('estop').success
    wait_until(lambda: rig.state == 'FAULT', 2.0, 'FAULT')
    assert rig.commands[-1].data.tolist() == ZERO
    assert not rig.call('enable', True).success
    rig.sensors(position=_beyond(0, -1))  # a second condition while latched: no second event
    ok = rig.call('reset')
    assert not ok.success and 'beyond its limit' in ok.message
    rig.cycle()
    assert rig.call('reset').success and rig.state in ('FAULT', 'DISABLED')
    wait_until(lambda: rig.state == 'DISABLED', 2.0, 'DISABLED')
    assert rig.cycle() == ZERO
    assert [e['code'] for e in rig.logged()] == ['ESTOP'] and len(rig.fault_events()) == 1


def test_injected_faults_equal_logged_faults_with_contiguous_sequence_numbers(rig):
    kinds = ['position', 'request_nan', 'tilt', 'velocity', 'fall']
    for kind in kinds:
        rig.engage()
        sensors, effort, _ = _violation(kind)
        if sensors:
            rig.sensors(**sensors)
        else:
            rig.request_pub.publish(request_msg(rig.now(), effort, POSTURE))
        wait_until(lambda: rig.state == 'FAULT', 2.0, 'FAULT')
        rig.cycle()  # conditions cleared
        assert rig.call('reset').success
    wait_until(lambda: len(rig.fault_events()) == len(kinds), 2.0, 'fault diagnostics')
    events = read_events(rig.log_path)
    assert [e['code'] for e in events if e['kind'] == 'fault'] == [_violation(k)[2] for k in kinds]
    assert [e['sequence'] for e in events] == list(range(1, len(events) + 1))


def test_silent_sensors_fault_and_silent_controller_safe_stops(ros, tmp_path):
    rig = Rig(ros, tmp_path, **{'watchdog.request_max_age': 0.1})
    rig.engage()
    for _ in range(10):  # sensors keep coming, the controller has gone quiet
        rig.sensors()
        time.sleep(0.025)
    wait_until(lambda: rig.state == 'DISABLED', 2.0, 'safe stop')
    wait_until(lambda: rig.logged('safe_stop'), 2.0, 'the safe stop in the log')
    assert rig.commands[-1].data.tolist() == ZERO and not rig.logged()
    assert [e['code'] for e in rig.logged('safe_stop')] == ['CONTROLLER_STALE']
    rig.node.supervisor.configure({**rig.node.params, 'watchdog.joint_states_max_age': 0.05})
    rig.engage()
    time.sleep(0.2)  # total silence
    wait_until(lambda: rig.state == 'FAULT', 2.0, 'FAULT')
    wait_until(lambda: rig.logged(), 2.0, 'the fault in the log')
    assert rig.logged()[0]['code'] in ('JOINT_STATES_STALE', 'PELVIS_IMU_STALE')
    count = len(rig.commands)
    time.sleep(0.1)
    assert len(rig.commands) > count and rig.commands[-1].data.tolist() == ZERO  # repeated


def test_bad_stamps_are_refused_and_reported(rig):
    rig.engage()
    stamp = rig.now()
    rig.request_pub.publish(request_msg(stamp + 5.0, TORQUE, POSTURE))  # future
    wait_until(lambda: any('future' in s.message for m in rig.diagnostics for s in m.status), 2.0,
               'a diagnostic about the future stamp')
    assert rig.node.supervisor.request.refused == 1 and rig.state == 'ENABLED'


def test_live_parameter_change_applies_to_the_next_command(rig):
    from rcl_interfaces.srv import SetParameters
    rig.engage()
    response = rig.ros.call(SetParameters, '/safety_supervisor/set_parameters', SetParameters.Request(
        parameters=[Parameter('effort.limit_fraction', value=0.05).to_parameter_msg()]))
    assert response.results[0].successful
    expected = [min(5.0, 0.05 * LIMITS[name].effort) for name in JOINT_NAMES]
    assert rig.cycle() == pytest.approx(expected)
