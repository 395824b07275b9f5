"""The plain supervisor (no ROS): state machine, interlocks, watchdogs, events, fault log."""
import json
import math
from collections import namedtuple

import pytest

from exo_common.joints import JOINT_NAMES
from exo_common.params import resolve
from exo_safety.events import EventLog, FaultCode, SafetyEvent, EventKind, read_events
from exo_safety.interlocks import Envelope, tilt_from_vertical
from exo_safety.supervisor import DISABLED, ENABLED, FAULT, PARAMETERS, Supervisor

# Stand-in limits with distinct numbers per joint (the real ones come from the URDF).
Limits = namedtuple('Limits', 'name lower upper velocity effort')
LIMITS = [Limits(name, -0.4 - 0.1 * i, 1.2 + 0.1 * i, 5.0 + i, 100.0 - 10.0 * i)
          for i, name in enumerate(JOINT_NAMES)]
POSTURE = [0.3] * 6
ZERO = [0.0] * 6
TILTED = (math.sin(0.4), 0.0, 0.0, math.cos(0.4))  # 0.8 rad about x


def params(**overrides):
    values = {'safe_mode': 'zero', 'engage.ramp_time': 0.0, 'effort.rate_limit': 100000.0,
              # ages of about three nominal periods, which these tests' time lines are built on
              'watchdog.joint_states_max_age': 0.003, 'watchdog.request_max_age': 0.003,
              'watchdog.imu_max_age': 0.015, 'velocity.persistence': 0.0}
    values.update({key.replace('__', '.'): value for key, value in overrides.items()})
    return resolve(PARAMETERS, values)


class Rig:
    """A supervisor fed by hand on a fake time line (1 ms cycles)."""

    def __init__(self, **overrides):
        self.sup = Supervisor(LIMITS, params(**overrides))
        self.t = 100.0

    def sensors(self, position=POSTURE, velocity=ZERO, orientation=(0.0, 0.0, 0.0, 1.0),
                gyro=(0.0, 0.0, 0.0), stamp=None):
        stamp = self.t if stamp is None else stamp
        first = self.sup.on_joint_states(stamp, list(JOINT_NAMES), position, velocity, [], self.t, self.t)
        second = self.sup.on_pelvis_imu(stamp, orientation, True, gyro, (0.0, 0.0, 9.81), self.t, self.t)
        return first or second

    def request(self, effort, reference=POSTURE, stamp=None):
        stamp = self.t if stamp is None else stamp
        return self.sup.on_request(stamp, list(JOINT_NAMES), effort, reference, ZERO, self.t, self.t)

    def cycle(self, effort=ZERO, reference=POSTURE, **sensors):
        self.t += 0.001
        self.sensors(**sensors)
        return self.request(effort, reference)

    def enabled(self):
        self.cycle()
        assert self.sup.enable(True, self.t, self.t)[0]
        self.cycle()
        assert self.sup.engaged
        return self


def codes(sup, kind=EventKind.FAULT):
    return [event.code for event in sup.drain_events() if event.kind == kind]


def test_enable_needs_fresh_inputs_and_torque_waits_for_the_posture():
    rig = Rig()
    ok, message = rig.sup.enable(True, rig.t, rig.t)
    assert not ok and 'no valid message' in message and rig.sup.state == DISABLED
    rig.cycle()
    assert rig.sup.enable(True, rig.t, rig.t)[0] and rig.sup.state == ENABLED
    far = [p + 0.2 for p in POSTURE]
    assert rig.cycle([10.0] * 6, reference=far) == ZERO and not rig.sup.engaged
    assert rig.cycle([10.0] * 6) == [10.0] * 6 and rig.sup.engaged


def test_torque_ramps_in_after_engaging():
    rig = Rig(engage__ramp_time=0.01)
    rig.cycle()
    rig.sup.enable(True, rig.t, rig.t)
    torques = [rig.cycle([10.0] * 6)[0] for _ in range(15)]
    assert torques[0] == 0.0 and 0.0 < torques[5] < 10.0 and torques[-1] == 10.0
    assert torques == sorted(torques)


def test_clamp_and_rate_limit():
    rig = Rig(effort__rate_limit=1000.0).enabled()  # 1 N m per 1 ms cycle
    first = rig.cycle([1000.0, -1000.0, 0.5, 0.0, 0.0, 0.0])
    assert first[:3] == pytest.approx([1.0, -1.0, 0.5])
    for _ in range(300):
        command = rig.cycle([1000.0, -1000.0, 0.5, 0.0, 0.0, 0.0])
    assert command[0] == LIMITS[0].effort and command[1] == -LIMITS[1].effort


def test_effort_fraction_lowered_live_clamps_at_once():
    rig = Rig().enabled()
    assert rig.cycle([80.0] * 6)[0] == 80.0
    rig.sup.configure(params(effort__limit_fraction=0.5))
    assert rig.cycle([80.0] * 6)[0] == 50.0


def test_soft_velocity_limit_fades_torque_towards_more_speed_and_brakes_beyond():
    envelope = Envelope(LIMITS[:1], velocity_gain=40.0)  # 5 rad/s, 100 N m
    def shaped(request, velocity):
        return envelope.shape([request], [request], [0.4], 1e9, 1.0, [velocity])[0]
    assert shaped(80.0, 0.0) == 80.0                 # far from the limit: untouched
    assert shaped(80.0, 4.0) == pytest.approx(40.0)  # 40 N m s/rad x 1 rad/s of margin
    assert shaped(80.0, 5.0) == 0.0                  # at the limit: nothing towards more speed
    assert shaped(80.0, 5.5) == pytest.approx(-20.0)  # beyond: braking, whatever was asked
    assert shaped(-80.0, 5.0) == -80.0               # torque against the motion is never cut
    assert shaped(-80.0, -4.5) == pytest.approx(-20.0)  # the same law in the other direction
    assert Envelope(LIMITS[:1]).shape([80.0], [80.0], [0.4], 1e9, 1.0, [9.0]) == [80.0]  # gain 0: off


def test_supervisor_applies_the_soft_velocity_limit_from_the_urdf_limit():
    rig = Rig(velocity__soft_gain=40.0).enabled()
    command = rig.cycle([80.0] * 6, velocity=[LIMITS[0].velocity - 0.5] + [0.0] * 5)
    assert command[:2] == pytest.approx([20.0, 80.0])


def test_soft_zone_removes_torque_into_the_limit_and_allows_torque_out():
    rig = Rig().enabled()
    near_upper = list(POSTURE)
    near_upper[1] = LIMITS[1].upper - 0.01
    command = rig.cycle([20.0] * 6, reference=near_upper, position=near_upper)
    assert command[1] == 0.0 and command[0] == 20.0
    assert rig.cycle([-20.0] * 6, reference=near_upper, position=near_upper)[1] == -20.0
    near_lower = list(POSTURE)
    near_lower[4] = LIMITS[4].lower + 0.01
    assert rig.cycle([-20.0] * 6, position=near_lower)[4] == 0.0
    assert rig.cycle([20.0] * 6, position=near_lower)[4] == 20.0
    assert rig.sup.state == ENABLED


@pytest.mark.parametrize('field, joint, value, code', [
    ('position', 2, LIMITS[2].upper + 0.05, FaultCode.POSITION_LIMIT),
    ('position', 3, LIMITS[3].lower - 0.05, FaultCode.POSITION_LIMIT),
    ('velocity', 4, LIMITS[4].velocity + 0.5, FaultCode.VELOCITY_LIMIT),
    ('velocity', 0, -LIMITS[0].velocity - 0.5, FaultCode.VELOCITY_LIMIT),
    ('position', 1, math.nan, FaultCode.SENSOR_NOT_FINITE),
    ('velocity', 5, math.inf, FaultCode.SENSOR_NOT_FINITE),
])
def test_measured_limit_faults_latch_with_joint_value_and_limit(field, joint, value, code):
    rig = Rig().enabled()
    rig.cycle([10.0] * 6)
    rig.sup.drain_events()
    bad = list(POSTURE if field == 'position' else ZERO)
    bad[joint] = value
    rig.t += 0.001
    safe = rig.sensors(**{field: bad})
    assert safe == ZERO and rig.sup.state == FAULT
    (event,) = rig.sup.drain_events()
    assert event.code == code.value and event.joint == JOINT_NAMES[joint]
    assert event.value == value or math.isnan(value)
    if code != FaultCode.SENSOR_NOT_FINITE:
        assert abs(event.limit) < abs(value)
    assert len(event.history) >= 2 and event.history[-1][-1] == [10.0] * 6
    assert rig.cycle([10.0] * 6) == ZERO  # latched


def test_reset_refused_while_the_condition_persists_then_no_torque_until_enabled_and_engaged():
    rig = Rig().enabled()
    beyond = list(POSTURE)
    beyond[0] = LIMITS[0].upper + 0.05
    rig.cycle(position=beyond)
    assert rig.sup.state == FAULT
    ok, message = rig.sup.reset(rig.t, rig.t)
    assert not ok and 'beyond its limit' in message and rig.sup.state == FAULT
    assert rig.sup.enable(True, rig.t, rig.t)[0] is False
    rig.cycle()
    assert rig.sup.reset(rig.t, rig.t)[0] and rig.sup.state == DISABLED
    assert rig.cycle([10.0] * 6) == ZERO
    rig.sup.enable(True, rig.t, rig.t)
    assert rig.cycle([10.0] * 6, reference=[0.9] * 6) == ZERO
    assert rig.cycle([10.0] * 6) == [10.0] * 6


@pytest.mark.parametrize('orientation, gyro, code', [
    (TILTED, (0.0, 0.0, 0.0), FaultCode.TRUNK_TILT),
    ((0.0, 0.0, 0.0, 1.0), (0.0, 5.0, 0.0), FaultCode.FALL),
    ((0.0, math.nan, 0.0, 1.0), (0.0, 0.0, 0.0), FaultCode.SENSOR_NOT_FINITE),
])
def test_pelvis_imu_faults(orientation, gyro, code):
    rig = Rig().enabled()
    rig.sup.drain_events()
    rig.t += 0.001
    assert rig.sensors(orientation=orientation, gyro=gyro) == ZERO
    assert codes(rig.sup) == [code.value]


def test_non_finite_request_faults_and_is_never_passed_on():
    rig = Rig().enabled()
    rig.sup.drain_events()
    command = rig.cycle([1.0, math.nan, 1.0, 1.0, 1.0, 1.0])
    assert command == ZERO and all(math.isfinite(c) for c in command)
    (event,) = rig.sup.drain_events()
    assert event.code == FaultCode.REQUEST_NOT_FINITE.value and event.joint == JOINT_NAMES[1]
    assert not rig.sup.reset(rig.t, rig.t)[0]  # the last request is still not finite
    rig.cycle()
    assert rig.sup.reset(rig.t, rig.t)[0]


def test_stale_sensors_fault_when_enabled_and_only_block_enable_when_disabled():
    rig = Rig()
    rig.cycle()
    rig.t += 0.01
    assert rig.sup.tick(rig.t, rig.t, 0.002) == ZERO and rig.sup.state == DISABLED
    assert 'stale' in rig.sup.enable(True, rig.t, rig.t)[1]
    rig.enabled()
    rig.sup.drain_events()
    rig.t += 0.004  # joint states older than 3 ms
    rig.sup.tick(rig.t, rig.t, 0.002)
    assert rig.sup.state == FAULT and codes(rig.sup) == [FaultCode.JOINT_STATES_STALE.value]


def test_stale_controller_is_a_safe_stop_not_a_latched_fault():
    rig = Rig().enabled()
    rig.cycle([10.0] * 6)
    rig.sup.drain_events()
    rig.t += 0.002
    rig.sensors()
    rig.t += 0.002
    rig.sensors()
    assert rig.sup.tick(rig.t, rig.t, 0.0) == ZERO
    assert rig.sup.state == DISABLED and codes(rig.sup, EventKind.SAFE_STOP) == ['CONTROLLER_STALE']
    assert rig.cycle([10.0] * 6) == ZERO  # no torque until enabled again


@pytest.mark.parametrize('offset, clock_jump, kind', [
    (0.0, 0.0, 'duplicate'), (-0.0005, 0.0, 'out-of-order'), (0.5, 0.0, 'future'), (0.0001, 1.0, 'stale')])
def test_bad_stamps_are_refused_counted_and_do_not_feed_the_watchdog(offset, clock_jump, kind):
    rig = Rig().enabled()
    rig.cycle()
    last = rig.t
    rig.t += 0.002 + clock_jump
    assert rig.request([5.0] * 6, stamp=last + offset) is None
    assert rig.sup.request.refused == 1 and rig.sup.diagnostics_due
    assert any(kind in message for _, (_, message, _) in rig.sup.problems.items())
    rig.t += 0.002
    rig.sensors()
    rig.sup.tick(rig.t, rig.t, 0.0)
    assert rig.sup.state != ENABLED  # the refused request did not keep the controller alive


def test_wrong_names_are_refused_not_used():
    rig = Rig().enabled()
    swapped = list(reversed(JOINT_NAMES))
    assert rig.sup.on_joint_states(rig.t + 0.001, swapped, [5.0] * 6, ZERO, [], rig.t, rig.t) is None
    assert rig.sup.position == POSTURE and rig.sup.state == ENABLED


def test_one_event_per_fault_and_estop_latches_from_any_state():
    rig = Rig().enabled()
    beyond = list(POSTURE)
    beyond[0] = LIMITS[0].upper + 0.05
    for _ in range(5):
        rig.cycle(position=beyond)
    assert codes(rig.sup) == ['POSITION_LIMIT']
    rig.cycle()
    rig.sup.reset(rig.t, rig.t)
    rig.sup.estop(rig.t, rig.t)
    assert rig.sup.state == FAULT and codes(rig.sup) == ['ESTOP']


def test_damping_safe_mode_opposes_motion_and_is_zero_on_stale_states():
    rig = Rig(safe_mode='damping')
    rig.t += 0.001
    velocity = [1.0, -1.0, 0.0, 0.0, 0.0, 0.0]
    rig.sensors(velocity=velocity)
    command = rig.sup.tick(rig.t, rig.t, 0.0)
    gains = PARAMETERS[[p.name for p in PARAMETERS].index('damping.gains')].default
    assert command[:3] == [-gains[0], gains[1], 0.0]
    rig.t += 0.01
    assert rig.sup.tick(rig.t, rig.t, 0.0) == ZERO


def test_velocity_must_stay_above_the_limit_for_the_persistence_time():
    rig = Rig(velocity__persistence=0.01).enabled()
    spike = [0.0] * 6
    spike[2] = LIMITS[2].velocity + 1.0
    for _ in range(5):  # a 5 ms impact spike passes
        rig.cycle(effort=[1.0] * 6, velocity=spike)
    rig.cycle(effort=[1.0] * 6)
    assert rig.sup.state == 'ENABLED'
    for _ in range(12):  # 12 ms above the limit is a runaway
        rig.cycle(effort=[1.0] * 6, velocity=spike)
    assert rig.sup.state == 'FAULT' and codes(rig.sup) == [FaultCode.VELOCITY_LIMIT.value]


def test_estop_removes_torque_even_in_damping_mode_until_reset():
    rig = Rig(safe_mode='damping').enabled()
    velocity = [1.0, -1.0, 0.5, 0.0, 0.0, 0.0]
    rig.cycle(effort=[5.0] * 6, velocity=velocity)
    rig.sup.estop(rig.t, rig.t)
    assert rig.cycle(effort=[5.0] * 6, velocity=velocity) == ZERO
    assert rig.sup.tick(rig.t, rig.t, 0.0) == ZERO
    assert rig.sup.reset(rig.t, rig.t)[0]
    rig.t += 0.001
    rig.sensors(velocity=velocity)
    assert rig.sup.tick(rig.t, rig.t, 0.0)[0] < 0.0, 'damping again after reset'


def test_envelope_refuses_bad_limits():
    with pytest.raises(ValueError, match='finite'):
        Envelope([Limits('j', math.nan, 1.0, 1.0, 1.0)])
    with pytest.raises(ValueError, match='no free range'):
        Envelope([Limits('j', 0.0, 0.1, 1.0, 1.0)], soft_zone=0.05)
    with pytest.raises(ValueError, match='order'):
        Supervisor(list(reversed(LIMITS)), params())


def test_supervisor_builds_from_the_urdf_limits():
    from exo_common.description import joint_limits
    limits = joint_limits()
    sup = Supervisor([limits[name] for name in JOINT_NAMES], params())
    assert sup.envelope.effort_max == [limits[name].effort for name in JOINT_NAMES]


def test_tilt_from_quaternion():
    assert tilt_from_vertical(0.0, 0.0, 0.0, 1.0) == 0.0
    assert tilt_from_vertical(*TILTED) == pytest.approx(0.8)
    assert tilt_from_vertical(0.0, 0.0, math.sin(1.0), math.cos(1.0)) == pytest.approx(0.0, abs=1e-7)
    assert tilt_from_vertical(0.0, 2 * math.sin(0.3), 0.0, 2 * math.cos(0.3)) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        tilt_from_vertical(0.0, 0.0, 0.0, 0.0)


def test_event_log_reports_each_event_from_its_own_thread_once_written(tmp_path):
    """The node's log line goes out from the writer thread (rclpy logging takes 1.7 ms, too
    long for the control loop's thread), after the event is in the file; a report that fails
    does not stop the writing."""
    import threading
    path = tmp_path / 'faults.jsonl'
    reported = []

    def report(event):
        reported.append((event.code, threading.current_thread().name,
                         [e['code'] for e in read_events(path)]))
        if event.code == 'A':
            raise RuntimeError('logging broke')

    log = EventLog(path, on_written=report)
    for code in ('A', 'B'):
        log.append(SafetyEvent(EventKind.FAULT, code, 'x'))
    assert log.flush()
    log.close()
    assert reported == [('A', 'fault_log', ['A']), ('B', 'fault_log', ['A', 'B'])]


def test_event_log_sequences_continue_across_runs_and_survive_a_torn_line(tmp_path):
    path = tmp_path / 'sub' / 'faults.jsonl'
    log = EventLog(path)
    for code in ('A', 'B'):
        log.append(SafetyEvent(EventKind.FAULT, code, 'x', value=math.nan, history=[(1.0, 2.0, 'ENABLED', [1.0])]))
    log.close()
    with open(path, 'ab') as handle:
        handle.write(b'{"kind":"fault","seq')  # a crash in the middle of a line
    log = EventLog(path)
    assert log.last_sequence == 2
    log.append(SafetyEvent(EventKind.FAULT, 'C', 'y'))
    log.close()
    events = read_events(path)
    assert [e['sequence'] for e in events] == [1, 2, 3] and [e['code'] for e in events] == ['A', 'B', 'C']
    assert events[0]['value'] == 'nan' and events[0]['history'][0]['state'] == 'ENABLED'
    json.loads(path.read_text().splitlines()[-1])


def test_fault_history_keeps_the_last_cycles():
    rig = Rig(fault_log__history_cycles=50).enabled()
    for _ in range(80):
        rig.cycle([1.0] * 6)
    rig.sup.estop(rig.t, rig.t)
    (event,) = [e for e in rig.sup.drain_events() if e.kind == EventKind.FAULT]
    assert len(event.history) == 50 and event.history[-1][0] == rig.t
    record = json.loads(event.to_json())
    assert record['history'][-1]['command'] == [1.0] * 6
