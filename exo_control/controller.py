"""The gait controller without ROS: parameters, checks, and one control step per joint sample.

Per /joint_states sample (GaitController.step):
1. check the sample (lengths, finite values, stamp order and age); a bad one gives a zero
   request and a problem, and the next good one restarts the ramp-in;
2. advance the reference cross-fade and the phase (time-based in guidance mode, estimated from
   each leg's hip motion otherwise, see exo_control.phase; in cooperative mode a phase offset
   also integrates the hip and knee error along the reference, so the patient leads timing) at
   the cadence of the belt's current speed; while the belt stands the phase holds;
3. reference angles and velocities per leg (right leg half a cycle behind in guidance);
4. torque = exo gravity + friction compensation (every mode, for the state one drive lag
            ahead so the lagging drive delivers it on time)
            + assistance x (K e + D e_dot) (guidance, cooperative) or the tunnel spring (path),
   assistance = leg bound, or the assist-as-needed level of the joint's phase bin (its
   forgetting gated by the EMG's voluntary activity when aan.emg_gated_forgetting, see
   exo_control.assistance), times the EMG yield factor;
5. the whole request ramps in from zero (linearly from the re-synchronisation stamp) after
   start, after the safety supervisor enables, and after any interruption of valid data, with
   the reference re-synchronised to the measured posture (best-matching phase plus an offset
   that fades out), so torque never jumps.
"""
import math
from typing import Optional, Sequence

from exo_common import normative
from exo_common.diagnostics import Level, Problems
from exo_common.joints import EMG_CHANNELS, JOINT_NAMES, JOINTS_PER_LEG, LEGS
from exo_common.params import ParamSpec
from exo_control.assistance import AssistAsNeeded, EmgYield
from exo_control.dynamics import ExoDynamics
from exo_control.phase import MAX_PULL, HipCrossingPhase, TimePhase, clamp, wrap_half
from exo_control.reference import GaitReference, smoothstep
from exo_sensors.stamps import StampCheck

MODES = ('transparent', 'guidance', 'cooperative', 'path')
KMH = 1.0 / 3.6
N_JOINTS = len(JOINT_NAMES)
N_PER_LEG = len(JOINTS_PER_LEG)
DEG = math.pi / 180.0
POSITION_MARGIN = 0.2  # rad beyond the URDF range at which a measured angle is implausible
MAX_PHASE_OFFSET = 0.1  # cycles: the largest correction of the cooperative phase estimate
# A belt slower than this stands: the gait phase holds (the patient is not walking yet, or any more).
STANDSTILL_MPS = 0.02
# Cross-fade of the reference to the belt's new speed: the belt itself changes speed smoothly and
# the patient walks the pattern of its current speed; reference.blend_time_s (seconds) would
# leave the curves of a speed the belt left long ago while it runs up.
TREADMILL_BLEND_S = 0.2

PARAMS = [
    ParamSpec('mode', 'guidance',
              'transparent: exo gravity + friction compensation only; guidance: impedance to the '
              'reference at the cadence of the speed; cooperative: impedance to the reference at '
              'the phase of the patient\'s own motion; path: no torque inside a tunnel around the '
              'reference, a spring outside', choices=MODES),
    ParamSpec('patient_height_m', 1.75, 'patient height (exo segment lengths, cadence)', 'm',
              1.2, 2.2, read_only=True),
    ParamSpec('assistance.left_percent', 100.0,
              'left leg assistance: 0 = transparent, 100 = full guidance stiffness; upper bound '
              'for assist-as-needed', '%', 0.0, 100.0, step=1.0),
    ParamSpec('assistance.right_percent', 100.0, 'right leg assistance (see left_percent)', '%',
              0.0, 100.0, step=1.0),
    ParamSpec('aan.enabled', False, 'assist-as-needed: adapt assistance per joint and phase bin '
              'from the tracking error, within the leg\'s assistance'),
    ParamSpec('aan.gain', 10.0, 'assistance added per stride per degree of mean error above the '
              'deadband', '%/deg', 0.0, 100.0),
    ParamSpec('aan.forgetting', 0.95, 'assistance kept from one stride to the next (1 = never '
              'decreases)', '', 0.5, 1.0),
    ParamSpec('aan.deadband_deg', 2.0, 'tracking error that adds no assistance', 'deg', 0.0, 20.0),
    ParamSpec('aan.emg_gated_forgetting', True, 'assist-as-needed forgets help only where '
              '/emg/envelope shows the joint\'s own voluntary activity (a muscle above emg.threshold '
              'inside its on-window); where it shows none, help is kept. Without fresh EMG the plain '
              'rule (forgetting everywhere) applies'),
    ParamSpec('aan.phase_bins', 20, 'phase bins per gait cycle of the adapted assistance', '',
              4, 100, read_only=True),
    ParamSpec('reference.speed_kmh', 2.0, 'walking speed of the reference when not following '
              'the treadmill', 'km/h', 0.3, 5.0),
    ParamSpec('reference.follow_treadmill', True, 'follow /hw/treadmill/speed when it is '
              'published (the parameter speed otherwise)'),
    ParamSpec('reference.step_length_scale', 1.0, 'scale of the hip excursion (step length)', '',
              0.5, 1.5),
    ParamSpec('reference.step_height_scale', 1.0, 'scale of the swing knee flexion (foot '
              'clearance)', '', 0.5, 2.0),
    ParamSpec('reference.blend_time_s', 2.0, 'cross-fade time of a change of the reference settings '
              '(speed, step scales); the belt\'s own speed changes cross-fade in 0.2 s', 's',
              0.1, 10.0),
    ParamSpec('stiffness.hip', 2500.0, 'hip stiffness at 100 % assistance', 'Nm/rad', 0.0, 3000.0),
    ParamSpec('stiffness.knee', 1500.0, 'knee stiffness at 100 % assistance', 'Nm/rad', 0.0, 3000.0),
    ParamSpec('stiffness.ankle', 250.0, 'ankle stiffness at 100 % assistance', 'Nm/rad', 0.0, 1500.0),
    ParamSpec('damping.hip', 100.0, 'hip damping at 100 % assistance', 'Nm s/rad', 0.0, 200.0),
    ParamSpec('damping.knee', 40.0, 'knee damping at 100 % assistance', 'Nm s/rad', 0.0, 200.0),
    ParamSpec('damping.ankle', 3.0, 'ankle damping at 100 % assistance', 'Nm s/rad', 0.0, 100.0),
    ParamSpec('path.tunnel_width_deg', 5.0, 'half-width of the path-mode tunnel (no corrective '
              'torque inside)', 'deg', 0.0, 30.0),
    ParamSpec('friction_compensation', 1.0, 'fraction of the drives\' URDF friction compensated',
              '', 0.0, 1.0),
    ParamSpec('compensation.drive_lag_s', 0.008, 'the drives\' torque lag (first-order time '
              'constant; 8 ms = a 20 Hz drive): gravity and friction compensation are computed for '
              'the state this far ahead so that the torque arrives on time; 0 = no lead', 's',
              0.0, 0.05),
    ParamSpec('compensation.acceleration_filter_s', 0.01, 'time constant of the low-pass on the '
              'differentiated joint velocity used for the lead', 's', 0.001, 0.1),
    ParamSpec('phase.loop_bandwidth_hz', 0.3, 'bandwidth of the phase-locked loop of the '
              'cooperative phase estimator', 'Hz', 0.1, 5.0),
    ParamSpec('phase.leg_fusion', 1.0, 'cooperative phase: 0 = each leg from its own hip, 1 = both '
              'legs\' estimates averaged with the other leg half a cycle behind (steadies a weak '
              'leg\'s estimate with the other leg\'s)', '', 0.0, 1.0),
    ParamSpec('phase.cadence_prior', 0.05, 'cooperative phase: pull of the estimated stride rate '
              'toward the cadence the belt speed implies, per hip crossing (0 = measured cadence '
              'only; a passive leg gives no cadence of its own)', '', 0.0, 1.0),
    ParamSpec('phase.path_correction_hz', 0.5, 'cooperative mode: rate at which a phase offset '
              'moves to cancel the hip and knee tracking error along the reference (the patient '
              'leads timing even under stiff guidance, and the estimator\'s own lag is removed); '
              '0 = off', 'Hz', 0.0, 5.0),
    ParamSpec('emg.enabled', True, 'yield assistance where /emg/envelope shows the patient\'s own '
              'effort in the right phase'),
    ParamSpec('emg.threshold', 0.05, 'activation below which a muscle counts as silent (no '
              'yielding, and no forgetting with aan.emg_gated_forgetting)', 'fraction of MVC', 0.0, 1.0),
    ParamSpec('emg.full_activation', 0.4, 'activation at which the yield is complete',
              'fraction of MVC', 0.01, 1.5),
    ParamSpec('emg.max_yield', 0.5, 'largest reduction of a joint\'s assistance', '', 0.0, 1.0),
    ParamSpec('emg.timeout_s', 0.3, 'EMG older than this is ignored (no yielding)', 's', 0.02, 5.0),
    ParamSpec('emg.smoothing_s', 0.1, 'time constant of changes of the EMG yield', 's', 0.001, 2.0),
    ParamSpec('safety.torque_ramp_s', 1.0, 'time to ramp the request in from zero', 's', 0.05, 10.0),
    ParamSpec('safety.resync_s', 1.5, 'time over which the reference returns from the measured '
              'posture to the gait after (re)starting', 's', 0.05, 10.0),
    ParamSpec('input.max_age_s', 0.05, 'a /joint_states sample older than this gives a zero '
              'request', 's', 0.001, 1.0),
    ParamSpec('input.max_future_s', 0.01, 'a sample stamped further ahead of the clock than this '
              'gives a zero request', 's', 0.0, 1.0),
    ParamSpec('input.max_gap_s', 0.1, 'a gap between valid samples longer than this restarts the '
              'ramp-in and re-synchronisation', 's', 0.005, 5.0),
    ParamSpec('treadmill.timeout_s', 1.0, 'treadmill speed older than this falls back to the '
              'parameter speed', 's', 0.1, 10.0),
]

_JOINT_GROUPS = [JOINTS_PER_LEG[j % N_PER_LEG] for j in range(N_JOINTS)]


def check_params(params: dict) -> Optional[str]:
    if params['emg.full_activation'] <= params['emg.threshold']:
        return (f'emg.full_activation ({params["emg.full_activation"]}) must exceed emg.threshold '
                f'({params["emg.threshold"]})')
    return None


class GaitController:
    """Reference, phase, assistance and torque law for the six joints.

    Args:
        params: PARAMS values (name -> value).
        dynamics: the exoskeleton's gravity/friction model.
        limits: JointLimits-like (lower, upper, effort) per joint name, from the URDF.

    After step(): `reference_position`, `reference_velocity` (JOINT_NAMES order), `phases`
    (left, right) and `assistance` (effective level per joint, 0..1) describe that step.
    """

    def __init__(self, params: dict, dynamics: ExoDynamics, limits: dict):
        self.params = dict(params)
        self.dynamics = dynamics
        self._effort_limit = [limits[name].effort for name in JOINT_NAMES]
        self._lower = [limits[name].lower - POSITION_MARGIN for name in JOINT_NAMES]
        self._upper = [limits[name].upper + POSITION_MARGIN for name in JOINT_NAMES]
        lower = [limits[name].lower for name in JOINT_NAMES[:N_PER_LEG]]
        upper = [limits[name].upper for name in JOINT_NAMES[:N_PER_LEG]]
        self.problems = Problems()
        self.pending: list = []  # (key, Level, message, values) new problems for the node to publish
        self.treadmill_speed: Optional[float] = None
        self._belt_cadence: Optional[float] = None  # strides/s the belt's speed implies (None: no belt)
        self._standing = False
        self._treadmill_stamp = -math.inf
        self.reference = GaitReference(params['reference.speed_kmh'] * KMH,
                                       params['reference.step_length_scale'],
                                       params['reference.step_height_scale'],
                                       params['patient_height_m'], params['reference.blend_time_s'],
                                       lower, upper)
        self.time_phase = TimePhase()
        hip = self.reference.hip_curve()
        self.estimators = [HipCrossingPhase(hip, self.reference.stride_rate,
                                         params['phase.loop_bandwidth_hz']) for _ in LEGS]
        self.aan = AssistAsNeeded(params['aan.phase_bins'], 0.0, 1.0, 0.0, [1.0] * N_JOINTS)
        self._emg_voluntary = [False] * N_JOINTS
        self.emg_yield = EmgYield(0.1, 0.4, 0.5)
        self._emg_target = [1.0] * N_JOINTS
        self._emg_factor = [1.0] * N_JOINTS
        self._emg_stamp = -math.inf
        self._emg_activations = [0.0] * len(EMG_CHANNELS)
        self.stamps = StampCheck(params['input.max_age_s'], params['input.max_future_s'])
        self.enabled = False
        self.reference_position = [0.0] * N_JOINTS
        self.reference_velocity = [0.0] * N_JOINTS
        self._slope = [0.0] * N_JOINTS
        self.phases = [0.0, 0.5]
        self.assistance = [0.0] * N_JOINTS
        self.request = [0.0] * N_JOINTS
        self.ramp = 0.0
        self._last_stamp: Optional[float] = None
        self._phase_offset = [0.0, 0.0]
        self._restart_phase = False
        self._slope_power = self.reference.slope_power()
        self._previous_velocity: Optional[list] = None
        self._acceleration = [0.0] * N_JOINTS
        self._ahead_q = [0.0] * N_JOINTS
        self._ahead_qd = [0.0] * N_JOINTS
        self._needs_sync = True
        self._sync_offset = [0.0] * N_JOINTS
        self._sync_stamp = 0.0
        self._fade_from = 0.0  # stamp the return from the synchronised posture to the gait starts
        self._sync_posture = [0.0] * N_JOINTS
        self.apply_params(params)

    # ---------------------------------------------------------------- configuration

    def apply_params(self, changed: dict) -> None:
        """Apply (live) parameter values; unknown names are ignored."""
        p = self.params
        p.update(changed)
        self._mode = MODES.index(p['mode'])
        self._stiffness = [p[f'stiffness.{group}'] for group in _JOINT_GROUPS]
        self._damping = [p[f'damping.{group}'] for group in _JOINT_GROUPS]
        self._tunnel = p['path.tunnel_width_deg'] * DEG
        self._fusion = p['phase.leg_fusion']
        self._path_correction = p['phase.path_correction_hz']
        self._leg_bounds = [p['assistance.left_percent'] / 100.0, p['assistance.right_percent'] / 100.0]
        bounds = [self._leg_bounds[j // N_PER_LEG] for j in range(N_JOINTS)]
        self.aan.gain = p['aan.gain'] / 100.0 / DEG
        self.aan.forgetting = p['aan.forgetting']
        self.aan.emg_gated = p['aan.emg_gated_forgetting']
        deadband = p['aan.deadband_deg'] * DEG
        self.aan.deadband = max(deadband, self._tunnel) if p['mode'] == 'path' else deadband
        if 'aan.enabled' in changed and p['aan.enabled']:
            self.aan.bounds = bounds
            self.aan.reset(to_bound=True)
        else:
            self.aan.set_bounds(bounds)
        y = self.emg_yield
        y.threshold, y.full, y.max_yield = p['emg.threshold'], p['emg.full_activation'], p['emg.max_yield']
        self.stamps.max_age, self.stamps.max_future = p['input.max_age_s'], p['input.max_future_s']
        self.reference.blend_time_s = p['reference.blend_time_s']
        for estimator in self.estimators:
            estimator.set_bandwidth(p['phase.loop_bandwidth_hz'])
            estimator.cadence_prior = p['phase.cadence_prior']
        if 'mode' in changed:
            self._needs_sync = True  # a new law starts from the posture, ramped in
        self._retarget()

    def _speed(self) -> float:
        if self.params['reference.follow_treadmill'] and self.treadmill_speed is not None:
            return self.treadmill_speed
        return self.params['reference.speed_kmh'] * KMH

    def cadence(self) -> float:
        """Strides per second the gait phase advances at now: on a treadmill, the cadence of the
        belt's current speed (the belt sets the stepping rate while it runs up, so the reference's
        cross-fade of a speed change must not delay it; 0 while it stands), else the reference's."""
        return self.reference.stride_rate if self._belt_cadence is None else self._belt_cadence

    def _retarget(self, blend_time_s: Optional[float] = None) -> None:
        p = self.params
        before = self.reference.settings
        speed = self._speed()
        self.reference.set_target(speed, p['reference.step_length_scale'], p['reference.step_height_scale'],
                                  blend_time_s)
        if not p['reference.follow_treadmill'] or self.treadmill_speed is None:
            self._belt_cadence = None
        else:
            self._belt_cadence = (0.0 if speed < STANDSTILL_MPS
                                  else 1.0 / normative.stride_time_s(speed, p['patient_height_m']))
        if self.reference.settings != before:
            hip = self.reference.hip_curve()
            for estimator in self.estimators:
                estimator.calibrate(hip, normalisation=False)
            self._slope_power = self.reference.slope_power()

    def set_treadmill_speed(self, speed_mps: float, stamp: float) -> Optional[str]:
        """Belt speed (m/s); returns a problem sentence for a bad value (then ignored).

        Small changes (< 0.05 km/h) do not rebuild the reference.
        """
        if not math.isfinite(speed_mps) or not 0.0 <= speed_mps <= 5.0:
            return f'treadmill speed {speed_mps} m/s is not a plausible belt speed (0..5 m/s)'
        self._treadmill_stamp = stamp
        if self.treadmill_speed is None or abs(speed_mps - self.treadmill_speed) >= 0.05 * KMH:
            self.treadmill_speed = speed_mps
            self._retarget(TREADMILL_BLEND_S if self.params['reference.follow_treadmill'] else None)
        return None

    def check_treadmill(self, now: float) -> bool:
        """Drop a treadmill speed older than treadmill.timeout_s; True when it was dropped."""
        if self.treadmill_speed is not None and now - self._treadmill_stamp > self.params['treadmill.timeout_s']:
            self.treadmill_speed = None
            self._retarget()
            return True
        return False

    def set_emg(self, stamp: float, names: Sequence[str], activations: Sequence[float]) -> Optional[str]:
        """New EMG activations (fraction of MVC); returns a problem sentence when unusable."""
        if list(names) != list(EMG_CHANNELS):
            if len(names) != len(activations) or not set(EMG_CHANNELS) <= set(names):
                return f'EMG channels {list(names)} do not cover {list(EMG_CHANNELS)}'
            index = {name: i for i, name in enumerate(names)}
            activations = [activations[index[name]] for name in EMG_CHANNELS]
        for name, value in zip(EMG_CHANNELS, activations):
            if not (math.isfinite(value) and -0.05 <= value <= 2.0):
                return f'EMG {name}: activation {value} outside 0..2 (fraction of MVC)'
        self._emg_stamp = stamp
        self._emg_activations = list(activations)
        self._emg_target = self.emg_yield.factors(self._emg_activations, self.phases)
        self._emg_voluntary = self.emg_yield.active(self._emg_activations, self.phases)
        return None

    def emg_fresh(self, now: float) -> bool:
        """Whether usable EMG arrived within emg.timeout_s."""
        return now - self._emg_stamp <= self.params['emg.timeout_s']

    def emg_active(self, now: float) -> bool:
        """Whether EMG yielding is on and has fresh EMG."""
        return self.params['emg.enabled'] and self.emg_fresh(now)

    def set_enabled(self, enabled: bool) -> None:
        """The safety supervisor's state: torque only while enabled; re-sync on each enable."""
        if enabled and not self.enabled:
            self._needs_sync = True
            self._restart_phase = True
        self.enabled = enabled

    # ---------------------------------------------------------------- control step

    def report(self, key: str, level: Level, message: str, **values) -> None:
        """Record a problem; new ones (or a changed level) go to `pending` for publication."""
        if self.problems.raise_(key, level, message, **values):
            self.pending.append((key, level, message, values))

    def _zero(self) -> list:
        self._needs_sync = True
        self.ramp = 0.0
        self.request = [0.0] * N_JOINTS
        return self.request

    def check_sample(self, stamp: float, q: Sequence[float], qd: Sequence[float], now: float) -> bool:
        """True when a joint sample is usable; else records a problem naming the joint/value."""
        if len(q) != N_JOINTS or len(qd) != N_JOINTS:
            self.report('joint_states', Level.ERROR,
                          f'expected {N_JOINTS} positions and velocities, got {len(q)} and {len(qd)}')
            return False
        if not math.isfinite(sum(q) + sum(qd)):
            for name, value, kind in zip(JOINT_NAMES * 2, list(q) + list(qd),
                                         ('position',) * N_JOINTS + ('velocity',) * N_JOINTS):
                if not math.isfinite(value) or abs(value) > 1e6:
                    self.report('joint_states', Level.ERROR, f'{name}: {kind} is {value}',
                                joint=name, value=value)
                    return False
        lower, upper = self._lower, self._upper
        for j in range(N_JOINTS):
            if not lower[j] <= q[j] <= upper[j]:
                self.report('joint_states', Level.ERROR,
                            f'{JOINT_NAMES[j]}: position {q[j]:.3f} rad far outside the URDF range',
                            joint=JOINT_NAMES[j], value=q[j])
                return False
        stamp_problem = self.stamps.problem(stamp, now)
        if stamp_problem is not None:
            kind, message, values = stamp_problem
            self.report('joint_states', Level.ERROR, message, **values)
            return False
        if self.problems.clear('joint_states'):
            self.pending.append(('joint_states', Level.OK, 'joint states valid again', {}))
        return True

    def step(self, stamp: float, q: Sequence[float], qd: Sequence[float], now: float = 0.0) -> list:
        """The effort request (Nm, JOINT_NAMES order) for one joint sample.

        Args:
            stamp: the sample's stamp (s).
            q, qd: joint angles (rad) and velocities (rad/s) in JOINT_NAMES order.
            now: the node's clock (s) for the staleness check; 0 skips it.
        """
        if not self.check_sample(stamp, q, qd, now):
            return self._zero()
        last = self._last_stamp
        self._last_stamp = stamp
        dt = 0.0 if last is None else stamp - last
        if dt > self.params['input.max_gap_s']:
            self._needs_sync = True
            dt = 0.0
        reference = self.reference
        reference.advance(dt)
        rate = self.cadence()
        mode = self._mode
        estimators = self.estimators
        standing = rate == 0.0
        if standing:
            # No gait: the phase holds, and the hips' motion (taking up the posture) is no stride.
            left, right = estimators[0].phase, estimators[1].phase
        else:
            if self._standing:  # the belt starts: crossings from before say nothing of this gait
                for estimator in estimators:
                    estimator.reset(estimator.phase, rate)
            estimators[0].set_nominal_rate(rate)
            estimators[1].set_nominal_rate(rate)
            left = estimators[0].update(q[0], qd[0], dt)
            right = estimators[1].update(q[3], qd[3], dt)
        self._standing = standing
        if mode == 1:
            left = self.time_phase.advance(rate, dt)
            right = (left - 0.5) % 1.0
            rates = (rate, rate)
        else:
            rates = (estimators[0].rate, estimators[1].rate)
            left = (left + self._phase_offset[0]) % 1.0
            right = (right + self._phase_offset[1]) % 1.0
            fusion = self._fusion
            if fusion > 0.0:
                # Circular mixing of each leg's estimate with the other's, shifted half a cycle.
                left_shift = 0.5 * fusion * wrap_half(right + 0.5 - left)
                right_shift = 0.5 * fusion * wrap_half(left - 0.5 - right)
                left, right = (left + left_shift) % 1.0, (right + right_shift) % 1.0
                mean_rate = 0.5 * (rates[0] + rates[1])
                rates = (rates[0] + fusion * (mean_rate - rates[0]), rates[1] + fusion * (mean_rate - rates[1]))
        if standing:
            rates = (0.0, 0.0)
        self.phases[0] = left
        self.phases[1] = right
        pos, vel, slope = self.reference_position, self.reference_velocity, self._slope
        reference.sample_leg(left, pos, slope, 0)
        reference.sample_leg(right, pos, slope, N_PER_LEG)
        for j in range(N_JOINTS):
            vel[j] = slope[j] * rates[j // N_PER_LEG]

        if not self.enabled:
            self._needs_sync = True
            return self._zero()
        if self._needs_sync:
            self._synchronise(stamp, q)
        resync_s = self.params['safety.resync_s']
        if standing and stamp - self._fade_from < resync_s:
            # Until the belt runs, hold the posture the legs were synchronised in, whatever the
            # reference's shape does meanwhile; the return to the gait starts with the belt.
            self._fade_from = stamp
            self._sync_offset = [held - r for held, r in zip(self._sync_posture, pos)]
        fade = 1.0 - smoothstep((stamp - self._fade_from) / resync_s)
        if fade > 0.0:
            offset = self._sync_offset
            for j in range(N_JOINTS):
                pos[j] += fade * offset[j]

        q_ahead, qd_ahead = self._lead(q, qd, dt)
        torque = self.dynamics.gravity(q_ahead)
        friction = self.dynamics.friction(qd_ahead, self.params['friction_compensation'])
        # The ramp counts from the (re)synchronisation, so the first request after enabling is
        # zero whatever time passed before it, and it scales the whole law (damping included).
        ramp = self.ramp = min(1.0, (stamp - self._sync_stamp) / self.params['safety.torque_ramp_s'])
        if mode == 2 and fade <= 0.0 and self._path_correction > 0.0:
            self._correct_phase(q, dt, rate)
        if mode != 0:
            self._add_assistance(torque, q, qd, stamp, dt, learn=ramp >= 1.0 and fade <= 0.0 and not standing)
        else:
            self.assistance = [0.0] * N_JOINTS
        limit = self._effort_limit
        request = self.request = [0.0] * N_JOINTS
        for j in range(N_JOINTS):
            value = ramp * (torque[j] + friction[j])
            request[j] = limit[j] if value > limit[j] else (-limit[j] if value < -limit[j] else value)
        return request

    def _add_assistance(self, torque: list, q, qd, stamp: float, dt: float, learn: bool) -> None:
        pos, vel, phases = self.reference_position, self.reference_velocity, self.phases
        stiffness, damping = self._stiffness, self._damping
        aan = self.aan if self.params['aan.enabled'] else None
        voluntary = self._emg_voluntary if aan is not None and aan.emg_gated and self.emg_fresh(stamp) else None
        bounds = self._leg_bounds
        emg = self._emg_factor
        if self.emg_active(stamp):
            target, k = self._emg_target, min(1.0, dt / self.params['emg.smoothing_s'])
        else:
            target, k = (1.0,) * N_JOINTS, 1.0
        tunnel = self._tunnel if self._mode == 3 else 0.0
        assistance = self.assistance
        for j in range(N_JOINTS):
            error = pos[j] - q[j]
            leg = j // N_PER_LEG
            if aan is None:
                level = bounds[leg]
            elif learn:
                level = aan.observe(j, phases[leg], abs(error), None if voluntary is None else voluntary[j])
            else:
                level = aan.level(j, phases[leg])
            emg[j] += k * (target[j] - emg[j])
            level *= emg[j]
            assistance[j] = level
            if tunnel:
                excess = abs(error) - tunnel
                if excess <= 0.0:
                    continue
                outside = min(1.0, excess / (0.5 * tunnel))
                error = excess if error > 0.0 else -excess
                torque[j] += level * (stiffness[j] * error + outside * damping[j] * (vel[j] - qd[j]))
            else:
                torque[j] += level * (stiffness[j] * error + damping[j] * (vel[j] - qd[j]))

    def _lead(self, q: Sequence[float], qd: Sequence[float], dt: float) -> tuple[list, list]:
        """The joint state compensation.drive_lag_s ahead (constant acceleration, low-passed)."""
        lag = self.params['compensation.drive_lag_s']
        previous = self._previous_velocity
        self._previous_velocity = list(qd)
        if lag <= 0.0:
            return q, qd
        acceleration = self._acceleration
        if previous is None or dt <= 0.0:
            acceleration[:] = [0.0] * N_JOINTS
        else:
            k = dt / (self.params['compensation.acceleration_filter_s'] + dt)
            for j in range(N_JOINTS):
                acceleration[j] += k * ((qd[j] - previous[j]) / dt - acceleration[j])
        q_ahead, qd_ahead = self._ahead_q, self._ahead_qd
        for j in range(N_JOINTS):
            q_ahead[j] = q[j] + lag * qd[j]
            qd_ahead[j] = qd[j] + lag * acceleration[j]
        return q_ahead, qd_ahead

    def _correct_phase(self, q: Sequence[float], dt: float, rate: float) -> None:
        """Move each leg's phase offset down the gradient of its squared hip and knee error.

        d/d(phase) of 0.5 |q - r(phase)|^2 is -(q - r) . dr/dphase: the offset integrates the
        error along the reference, normalised by the pattern's mean squared slope, so it settles
        where the exo applies no net torque along the path: timing is the patient's.
        """
        pos, slope = self.reference_position, self._slope
        gain = 2.0 * math.pi * self._path_correction * dt
        for leg in range(2):
            base = leg * N_PER_LEG
            along = ((q[base] - pos[base]) * slope[base]
                     + (q[base + 1] - pos[base + 1]) * slope[base + 1]) / self._slope_power
            offset = self._phase_offset[leg] + clamp(gain * along, MAX_PULL * rate * dt)
            self._phase_offset[leg] = clamp(offset, MAX_PHASE_OFFSET)

    def _synchronise(self, stamp: float, q: Sequence[float]) -> None:
        """Restart from the measured posture: phase that fits it best, offset fading out, ramp 0."""
        phases = None
        if self._mode == 1:
            left = self.time_phase.phase = self.reference.best_phase(q)
            phases = (left, (left - 0.5) % 1.0)
        elif self._restart_phase or not all(estimator.locked for estimator in self.estimators):
            # On enabling, the crossings seen while the legs hung or stood unassisted say nothing
            # of the gait about to start; and before the hips have crossed their centre the
            # estimators only integrate time: start them from the posture, the right leg half a
            # cycle behind. (After a brief data gap mid-walk the estimators keep their lock.)
            left = self.reference.best_phase(q)
            self._phase_offset = [0.0, 0.0]
            for estimator, phase in zip(self.estimators, (left, left - 0.5)):
                if self._restart_phase or not estimator.locked:
                    estimator.reset(phase, self.cadence())
            phases = tuple(estimator.phase for estimator in self.estimators)
        if phases is not None:
            # The offset that fades out must be taken from the reference at the new phases.
            self.phases[0], self.phases[1] = phases
            self.reference.sample_leg(phases[0], self.reference_position, self._slope, 0)
            self.reference.sample_leg(phases[1], self.reference_position, self._slope, N_PER_LEG)
        self._sync_posture = list(q)
        self._sync_offset = [m - r for m, r in zip(q, self.reference_position)]
        self._sync_stamp = self._fade_from = stamp
        self.ramp = 0.0
        self._needs_sync = self._restart_phase = False
        self.aan.discard_partial()

    # ---------------------------------------------------------------- reporting

    def assistance_map(self) -> list:
        """Assistance per joint and phase bin (0..1) the law applies: adapted levels, or the leg
        settings; none in transparent mode (0 % = transparent, whatever the bounds say)."""
        if self.params['mode'] == 'transparent':
            return [[0.0] * self.aan.bins for _ in range(N_JOINTS)]
        if self.params['aan.enabled']:
            return [list(levels) for levels in self.aan.levels]
        bins = self.aan.bins
        return [[self._leg_bounds[j // N_PER_LEG]] * bins for j in range(N_JOINTS)]

    def resolve(self, key: str, message: str) -> None:
        """A problem is over; the OK news goes to `pending` too."""
        if self.problems.clear(key):
            self.pending.append((key, Level.OK, message, {}))

    def take_pending(self) -> list:
        pending, self.pending = self.pending, []
        return pending
