"""The safety supervisor's logic: state machine, interlocks, watchdogs, events. No rclpy.

States (published on /safety_supervisor/state):
- DISABLED: the safe command (zero torque or joint damping). `enable(True)` -> ENABLED when
  every input is fresh and within its limits.
- ENABLED: no torque until the controller's reference starts from the measured posture (within
  `engage.posture_tolerance`); then the shaped request, ramped in over `engage.ramp_time`.
  `enable(False)` -> DISABLED. A stale controller is a *safe stop*: back to DISABLED, no reset
  needed, but torque only returns through an explicit enable (ISO 14118: no unexpected
  start-up after a stop), again from the current posture.
- FAULT (latched): the safe command until `reset()`, which is refused while any fault condition
  persists or an input is stale, and leads to DISABLED. E-stop latches a fault from any state.

Interlock faults (non-finite data, hard position limit, velocity limit, trunk tilt, fall) latch
in every state: a broken sensor or a patient beyond a joint limit must be seen and cleared by a
person even if no torque was on. Stale sensors fault only while ENABLED; while DISABLED they
only block enabling.

Each input is judged when it arrives, so a violating message is answered by the safe command
in the same callback; `tick()` catches silence. Callers pass both clocks: `ros_now` (node clock,
for stamps) and `steady_now` (time.monotonic(), for ages).
"""
from __future__ import annotations

import collections
import math
import time
from typing import Optional, Sequence

from exo_common.diagnostics import Level, Problems
from exo_common.joints import JOINT_NAMES
from exo_common.params import ParamSpec
from exo_safety.events import EventKind, FaultCode, SafetyEvent
from exo_safety.interlocks import Envelope, all_finite, first_non_finite, tilt_from_vertical
from exo_safety.watchdog import StreamWatch

DISABLED, ENABLED, FAULT = 'DISABLED', 'ENABLED', 'FAULT'
SAFE_MODES = ('zero', 'damping')
PELVIS_IMU = 'pelvis_imu'

PARAMETERS = [
    ParamSpec('safe_mode', 'damping', 'command while not enabled or in fault: zero torque, or joint '
              'damping so a limb does not drop freely', choices=SAFE_MODES),
    ParamSpec('damping.gains', [4.0, 3.0, 1.0, 4.0, 3.0, 1.0],
              'joint damping of the safe state, per joint in JOINT_NAMES order', 'N m s/rad',
              0.0, 50.0, length=len(JOINT_NAMES)),
    ParamSpec('effort.limit_fraction', 1.0, 'share of the URDF effort limit a command may use',
              '', 0.05, 1.0, step=0.05),
    ParamSpec('effort.rate_limit', 20000.0, 'largest change of a joint torque command per second',
              'N m/s', 10.0, 100000.0),
    ParamSpec('position.soft_zone', 0.05, 'width inside each URDF position limit where torque '
              'pushing towards the limit is removed', 'rad', 0.0, 0.3),
    ParamSpec('position.hard_margin', 0.01, 'distance beyond a URDF position limit at which a '
              'measured position faults', 'rad', 0.0, 0.1),
    ParamSpec('velocity.persistence', 0.01, 'how long a joint must stay above its velocity limit '
              'before the fault: foot-belt impacts make velocity spikes of a few ms that are no '
              'runaway (0 = fault on the first sample)', 's', 0.0, 0.1),
    ParamSpec('velocity.limit_fraction', 1.0, 'share of the URDF velocity limit above which a '
              'measured joint velocity faults', '', 0.1, 1.5),
    ParamSpec('velocity.soft_gain', 40.0, 'soft velocity limit: torque in the direction of motion '
              'is bounded by gain x (URDF velocity limit - |velocity|), braking beyond the limit, '
              'so commands cannot drive a joint into the velocity fault (ros2_control\'s effort '
              'soft-limit law, k_velocity); 0 = off', 'N m s/rad', 0.0, 1000.0),
    ParamSpec('imu.max_tilt', 0.6, 'largest pelvis tilt from vertical before a trunk-tilt fault',
              'rad', 0.1, 1.5),
    ParamSpec('imu.max_angular_rate', 4.0, 'largest pelvis angular rate before a fall fault',
              'rad/s', 0.5, 30.0),
    ParamSpec('watchdog.joint_states_max_age', 0.010, 'largest time without a valid /joint_states '
              'message (10 periods at 1 kHz: scheduling gaps of a few ms are normal on a loaded '
              'computer and no hazard)', 's', 0.001, 1.0),
    ParamSpec('watchdog.imu_max_age', 0.1, 'largest time without a valid pelvis IMU message '
              '(10 periods at 100 Hz; a fall develops over 0.5-1 s)', 's', 0.005, 1.0),
    ParamSpec('watchdog.request_max_age', 0.010, 'largest time without a valid controller request '
              'before a safe stop (10 periods at 1 kHz)', 's', 0.001, 1.0),
    ParamSpec('watchdog.max_stamp_age', 0.1, 'oldest accepted message stamp against the node clock',
              's', 0.001, 10.0),
    ParamSpec('watchdog.max_future', 0.01, 'largest accepted lead of a message stamp over the '
              'node clock', 's', 0.0, 1.0),
    ParamSpec('watchdog.period', 0.002, 'period of the watchdog timer that catches silence and '
              'repeats the safe command', 's', 0.0005, 0.05, read_only=True),
    ParamSpec('engage.posture_tolerance', 0.05, 'largest distance between the controller reference '
              'and the measured posture at which torque may start', 'rad', 0.005, 0.5),
    ParamSpec('engage.ramp_time', 0.5, 'time over which torque ramps in after engaging', 's', 0.0, 10.0),
    ParamSpec('fault_log.path', '', 'append-only JSON-lines event log; empty: '
              '$XDG_STATE_HOME/exo_gait/safety_faults.jsonl (or ~/.local/state/...)', read_only=True),
    ParamSpec('fault_log.history_cycles', 50, 'control cycles of inputs and outputs kept with '
              'each fault', 'cycles', 1, 10000, read_only=True),
]


class Supervisor:
    """Everything the safety supervisor decides, driven by plain values.

    Args:
        limits: per joint in JOINT_NAMES order, objects with name, lower, upper, velocity,
            effort (exo_common.description.joint_limits().values()).
        params: parameter name -> value (all of PARAMETERS).

    Raises:
        ValueError: limits in the wrong order or inconsistent with the margins.
    """

    def __init__(self, limits: Sequence, params: dict):
        limits = list(limits)
        if tuple(limit.name for limit in limits) != JOINT_NAMES:
            raise ValueError(f'joint limits must be for {JOINT_NAMES} in that order, got '
                             f'{tuple(limit.name for limit in limits)}')
        self.limits = limits
        self.state = DISABLED
        self.engaged = False
        self.engage_time = 0.0
        self.latched: Optional[SafetyEvent] = None
        self.events: list[SafetyEvent] = []        # new events for the caller to publish and log
        self.problems = Problems()                 # refused messages and other non-fault issues
        self.diagnostics_due = False               # a new problem: publish diagnostics now
        self.position = [0.0] * len(JOINT_NAMES)   # last accepted joint state
        self.velocity = [0.0] * len(JOINT_NAMES)
        self.tilt = 0.0
        self.angular_rate = 0.0
        self.last_request_finite = True
        self.command = [0.0] * len(JOINT_NAMES)
        self.last_output = -math.inf               # steady time of the last command returned
        self._names = list(JOINT_NAMES)
        self._history = collections.deque(maxlen=params['fault_log.history_cycles'])
        self.configure(params)

    # ------------------------------------------------------------------ configuration

    def configure(self, params: dict) -> None:
        """Apply (possibly live) parameter values. Raises ValueError like __init__."""
        envelope = Envelope(self.limits, params['effort.limit_fraction'], params['position.soft_zone'],
                            params['position.hard_margin'], params['velocity.limit_fraction'],
                            params['velocity.soft_gain'])
        self.params = dict(params)
        self.envelope = envelope
        self.damping_mode = params['safe_mode'] == 'damping'
        self.estopped = False
        self.velocity_persistence = params['velocity.persistence']
        self._overspeed_since = None
        self.gains = list(params['damping.gains'])
        self.rate_limit = params['effort.rate_limit']
        self.max_tilt = params['imu.max_tilt']
        self.max_rate_squared = params['imu.max_angular_rate'] ** 2
        self.posture_tolerance = params['engage.posture_tolerance']
        self.ramp_time = params['engage.ramp_time']
        stamp_age, future = params['watchdog.max_stamp_age'], params['watchdog.max_future']
        ages = {'joint_states': params['watchdog.joint_states_max_age'],
                'pelvis_imu': params['watchdog.imu_max_age'],
                'request': params['watchdog.request_max_age']}
        for attribute, name in (('joint_states', 'joint_states'), ('imu', 'pelvis_imu'), ('request', 'request')):
            watch = getattr(self, attribute, None)
            if watch is None:
                setattr(self, attribute, StreamWatch(name, ages[name], stamp_age, future))
            else:
                watch.max_age = ages[name]
                watch.stamps.max_age, watch.stamps.max_future = stamp_age, future

    # ------------------------------------------------------------------ inputs

    def on_joint_states(self, stamp: float, names: Sequence[str], position: Sequence[float],
                        velocity: Sequence[float], effort: Sequence[float],
                        ros_now: float, steady_now: float) -> Optional[list]:
        """Judge a /joint_states message; returns the safe command if it caused a fault."""
        n = len(self._names)
        if names != self._names or len(position) != n or len(velocity) != n or len(effort) not in (0, n):
            self._refuse('joint_states.layout', 'joint_states: refused, names or lengths differ from '
                         'the contract', names=list(names), lengths=(len(position), len(velocity), len(effort)))
            return None
        if not (all_finite(position) and all_finite(velocity) and all_finite(effort)):
            self._fault_non_finite(FaultCode.SENSOR_NOT_FINITE, 'joint_states',
                                   (('position', position), ('velocity', velocity), ('effort', effort)),
                                   ros_now, steady_now)
            return self._safe_output(steady_now)
        problem = self.joint_states.admit(stamp, ros_now, steady_now)
        if problem is not None:
            self._refuse('joint_states.' + problem[0].replace(' ', '_'), 'joint_states: ' + problem[1], **problem[2])
            return None
        self.position = list(position)
        self.velocity = list(velocity)
        violation = self.envelope.measured_violation(self.position, self.velocity)
        if violation is not None and violation.code == FaultCode.VELOCITY_LIMIT.value:
            # a speed limit is broken when it is exceeded for longer than an impact lasts
            if self._overspeed_since is None:
                self._overspeed_since = steady_now
            if steady_now - self._overspeed_since < self.velocity_persistence:
                return None
        else:
            self._overspeed_since = None
        if violation is not None:
            code, index, value, limit = violation
            quantity = 'position' if code == FaultCode.POSITION_LIMIT.value else 'velocity'
            unit = 'rad' if quantity == 'position' else 'rad/s'
            self._fault(FaultCode(code), f'{JOINT_NAMES[index]} {quantity} {value:.4f} {unit} beyond '
                        f'its limit {limit:.4f} {unit}', ros_now, steady_now, JOINT_NAMES[index], value, limit)
            return self._safe_output(steady_now)
        return None

    def on_pelvis_imu(self, stamp: float, orientation: Sequence[float], has_orientation: bool,
                      angular_velocity: Sequence[float], linear_acceleration: Sequence[float],
                      ros_now: float, steady_now: float) -> Optional[list]:
        """Judge a pelvis IMU message (orientation as x, y, z, w); returns the safe command if
        it caused a fault."""
        if not (all_finite(orientation) and all_finite(angular_velocity) and all_finite(linear_acceleration)):
            self._fault_non_finite(FaultCode.SENSOR_NOT_FINITE, PELVIS_IMU,
                                   (('orientation', orientation), ('angular_velocity', angular_velocity),
                                    ('linear_acceleration', linear_acceleration)), ros_now, steady_now)
            return self._safe_output(steady_now)
        if not has_orientation:
            self._refuse('pelvis_imu.orientation', 'pelvis_imu: refused, the message carries no '
                         'orientation estimate (orientation_covariance[0] = -1)')
            return None
        try:
            tilt = tilt_from_vertical(*orientation)
        except ValueError as exc:
            self._refuse('pelvis_imu.orientation', f'pelvis_imu: refused, {exc}')
            return None
        problem = self.imu.admit(stamp, ros_now, steady_now)
        if problem is not None:
            self._refuse('pelvis_imu.' + problem[0].replace(' ', '_'), 'pelvis_imu: ' + problem[1], **problem[2])
            return None
        wx, wy, wz = angular_velocity
        rate_squared = wx * wx + wy * wy + wz * wz
        self.tilt = tilt
        self.angular_rate = math.sqrt(rate_squared)
        if tilt > self.max_tilt:
            self._fault(FaultCode.TRUNK_TILT, f'pelvis tilt {tilt:.3f} rad beyond {self.max_tilt:.3f} rad',
                        ros_now, steady_now, PELVIS_IMU, tilt, self.max_tilt)
            return self._safe_output(steady_now)
        if rate_squared > self.max_rate_squared:
            limit = math.sqrt(self.max_rate_squared)
            self._fault(FaultCode.FALL, f'pelvis angular rate {self.angular_rate:.2f} rad/s beyond '
                        f'{limit:.2f} rad/s (fall)', ros_now, steady_now, PELVIS_IMU, self.angular_rate, limit)
            return self._safe_output(steady_now)
        return None

    def on_request(self, stamp: float, names: Sequence[str], effort: Sequence[float],
                   reference: Sequence[float], reference_velocity: Sequence[float],
                   ros_now: float, steady_now: float) -> Optional[list]:
        """Judge a controller request; returns the command to publish, or None when the
        request was refused (the previous command stands until the watchdog acts)."""
        n = len(self._names)
        if names != self._names or len(effort) != n or len(reference) != n or len(reference_velocity) not in (0, n):
            self._refuse('request.layout', 'request: refused, names or lengths differ from the contract',
                         names=list(names), lengths=(len(effort), len(reference), len(reference_velocity)))
            return None
        finite = all_finite(effort) and all_finite(reference) and all_finite(reference_velocity)
        self.last_request_finite = finite
        if not finite:
            self._fault_non_finite(FaultCode.REQUEST_NOT_FINITE, 'request',
                                   (('effort', effort), ('position', reference),
                                    ('velocity', reference_velocity)), ros_now, steady_now)
            return self._safe_output(steady_now)
        problem = self.request.admit(stamp, ros_now, steady_now)
        if problem is not None:
            self._refuse('request.' + problem[0].replace(' ', '_'), 'request: ' + problem[1], **problem[2])
            return None
        if self.state == ENABLED:
            self._check_sensors_fresh(ros_now, steady_now)
        if self.state == ENABLED and not self.engaged:
            if self.envelope.posture_mismatch(reference, self.position, self.posture_tolerance) < 0:
                self.engaged = True
                self.engage_time = steady_now
        if self.state == ENABLED and self.engaged:
            elapsed = steady_now - self.engage_time
            scale = 1.0 if elapsed >= self.ramp_time else elapsed / self.ramp_time
            dt = steady_now - self.last_output
            if dt > self.request.max_age:
                dt = self.request.max_age
            command = self.envelope.shape(effort, self.command, self.position, self.rate_limit * dt, scale,
                                          self.velocity)
            if not all_finite(command):  # cannot happen with finite inputs; never pass one on
                self._fault_non_finite(FaultCode.COMMAND_NOT_FINITE, 'command', (('effort', command),),
                                       ros_now, steady_now)
                return self._safe_output(steady_now)
            self.command = command
            self.last_output = steady_now
        else:
            command = self._safe_output(steady_now)
        self._history.append((steady_now, stamp, self.state, effort, reference, self.position,
                              self.velocity, self.tilt, command))
        return command

    # ------------------------------------------------------------------ timer

    def tick(self, ros_now: float, steady_now: float, repeat_after: float) -> Optional[list]:
        """Watchdog: catch silence; returns the safe command when one is due (no command was
        sent for repeat_after seconds while torque is off), else None."""
        if self.state == ENABLED:
            self._check_sensors_fresh(ros_now, steady_now)
        if self.state == ENABLED and self.request.stale(steady_now):
            self._safe_stop(ros_now, steady_now)
        if self.state != ENABLED or not self.engaged:
            if steady_now - self.last_output >= repeat_after:
                return self._safe_output(steady_now)
        return None

    # ------------------------------------------------------------------ operator

    def enable(self, on: bool, ros_now: float, steady_now: float) -> tuple[bool, str]:
        """SetBool /enable. Returns (success, message)."""
        before = self.state
        if not on:
            if self.state == ENABLED:
                self.state, self.engaged = DISABLED, False
                self._safe_output(steady_now)
                return self._operator('disable', True, 'disabled: safe command', before, ros_now, steady_now)
            return self._operator('disable', True, f'nothing to disable (state {self.state})', before,
                                  ros_now, steady_now)
        if self.state == FAULT:
            return self._operator('enable', False, f'refused: in FAULT ({self.latched.code}); reset first',
                                  before, ros_now, steady_now)
        if self.state == ENABLED:
            return self._operator('enable', True, 'already enabled', before, ros_now, steady_now)
        reason = self.not_ready(steady_now, need_request=True)
        if reason:
            return self._operator('enable', False, f'refused: {reason}', before, ros_now, steady_now)
        self.state, self.engaged = ENABLED, False
        return self._operator('enable', True, 'enabled: torque starts once the controller reference '
                              'matches the measured posture', before, ros_now, steady_now)

    def estop(self, ros_now: float, steady_now: float) -> tuple[bool, str]:
        """Trigger /estop: latch a fault from any state. Returns (success, message)."""
        before = self.state
        self.estopped = True
        self._fault(FaultCode.ESTOP, 'emergency stop requested', ros_now, steady_now)
        self._safe_output(steady_now)
        return self._operator('estop', True, f'emergency stop: FAULT latched ({self.latched.code})',
                              before, ros_now, steady_now)

    def reset(self, ros_now: float, steady_now: float) -> tuple[bool, str]:
        """Trigger /reset: FAULT -> DISABLED when no fault condition persists."""
        before = self.state
        if self.state != FAULT:
            return self._operator('reset', True, f'nothing to reset (state {self.state})', before,
                                  ros_now, steady_now)
        reason = self.not_ready(steady_now, need_request=False)
        if reason:
            return self._operator('reset', False, f'refused: {reason}', before, ros_now, steady_now)
        self.state, self.engaged, self.latched = DISABLED, False, None
        self.estopped = False
        return self._operator('reset', True, 'fault cleared: DISABLED, enable to apply torque',
                              before, ros_now, steady_now)

    def not_ready(self, steady_now: float, need_request: bool) -> Optional[str]:
        """Why torque may not be allowed now (stale input or a fault condition), else None."""
        watches = (self.joint_states, self.imu) + ((self.request,) if need_request else ())
        for watch in watches:
            problem = watch.freshness_problem(steady_now)
            if problem:
                return problem
        if not self.last_request_finite:
            return 'the last controller request was not finite'
        violation = self.envelope.measured_violation(self.position, self.velocity)
        if violation is not None:
            return (f'{JOINT_NAMES[violation.index]} at {violation.value:.4f} is beyond its limit '
                    f'{violation.limit:.4f} ({violation.code})')
        if self.tilt > self.max_tilt:
            return f'pelvis tilt {self.tilt:.3f} rad beyond {self.max_tilt:.3f} rad'
        if self.angular_rate ** 2 > self.max_rate_squared:
            return f'pelvis angular rate {self.angular_rate:.2f} rad/s too high'
        return None

    # ------------------------------------------------------------------ internals

    def safe_command(self, steady_now: float) -> list:
        """Zero torque, or damping on fresh joint states (zero on stale ones).

        An emergency stop always removes torque (a stop category 0, IEC 60204-1), whatever the
        safe mode, until reset.
        """
        if self.damping_mode and not self.estopped and not self.joint_states.stale(steady_now):
            return self.envelope.damping(self.gains, self.position, self.velocity)
        return [0.0] * len(JOINT_NAMES)

    def _safe_output(self, steady_now: float) -> list:
        self.command = self.safe_command(steady_now)
        self.last_output = steady_now
        return self.command

    def _check_sensors_fresh(self, ros_now: float, steady_now: float) -> None:
        for watch, code in ((self.joint_states, FaultCode.JOINT_STATES_STALE),
                            (self.imu, FaultCode.PELVIS_IMU_STALE)):
            if watch.stale(steady_now):
                age = watch.age(steady_now)
                self._fault(code, watch.freshness_problem(steady_now), ros_now, steady_now,
                            watch.name, age, watch.max_age)
                return

    def _fault(self, code: FaultCode, message: str, ros_now: float, steady_now: float,
               joint: str = '', value: float = math.nan, limit: float = math.nan) -> None:
        if self.state == FAULT:  # already latched: count, do not record a second event
            self.problems.counts['while_latched.' + code.value] = \
                self.problems.counts.get('while_latched.' + code.value, 0) + 1
            return
        event = SafetyEvent(EventKind.FAULT, code.value, message, joint, value, limit, ros_now,
                            steady_now, time.time(), self.state, FAULT,
                            history=list(self._history))
        self.state, self.engaged, self.latched = FAULT, False, event
        self.events.append(event)

    def _fault_non_finite(self, code: FaultCode, source: str, vectors, ros_now: float,
                          steady_now: float) -> None:
        for field, values in vectors:
            index, value = first_non_finite(values)
            if index >= 0:
                joint = JOINT_NAMES[index] if len(values) == len(JOINT_NAMES) else f'{source}[{index}]'
                self._fault(code, f'{source}: {field} of {joint} is {value}', ros_now, steady_now,
                            joint, value)
                return

    def _safe_stop(self, ros_now: float, steady_now: float) -> None:
        age = self.request.age(steady_now)
        event = SafetyEvent(EventKind.SAFE_STOP, FaultCode.CONTROLLER_STALE.value,
                            f'controller silent for {age * 1e3:.1f} ms (limit '
                            f'{self.request.max_age * 1e3:.1f} ms): safe stop, DISABLED',
                            'request', age, self.request.max_age, ros_now, steady_now, time.time(),
                            self.state, DISABLED, history=list(self._history))
        self.state, self.engaged = DISABLED, False
        self.events.append(event)
        self._safe_output(steady_now)

    def _operator(self, action: str, success: bool, message: str, before: str, ros_now: float,
                  steady_now: float) -> tuple[bool, str]:
        self.events.append(SafetyEvent(EventKind.OPERATOR, action, message, ros_time=ros_now,
                                       steady_time=steady_now, wall_time=time.time(),
                                       state_before=before, state_after=self.state,
                                       accepted=success))
        return success, message

    def _refuse(self, key: str, message: str, **values) -> None:
        if self.problems.raise_(key, Level.WARN, message, **values):
            self.diagnostics_due = True

    def drain_events(self) -> list[SafetyEvent]:
        events, self.events = self.events, []
        return events
