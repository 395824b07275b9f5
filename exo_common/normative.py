"""Healthy-gait reference data shipped in data/normative_gait.json (see data/NOTICE.md).

Joint angles are in the project's convention (rad; hip and knee flexion positive, ankle
dorsiflexion positive) as functions of the gait phase of the same leg (0 = that leg's heel
strike, 1 = its next heel strike). The other leg runs half a cycle later.

Two views of the same data:
- joint_curves(): the clinical convention of the source (hip = thigh relative to the pelvis of
  a free walker), for normative bands in reports;
- device_curves(): the pattern a device with an upright, guided pelvis (Lokomat-style) executes
  and that both the simulated patient and the controller's reference follow: hip relative to
  the vertical (hip minus the measured pelvic tilt at each phase) plus documented device
  adjustments: swing clearance (SwingClearance) and heel-strike alignment (HeelStrikeAlignment).
"""
from dataclasses import dataclass
import functools
import json
import math

import numpy as np
from scipy.interpolate import CubicSpline

from exo_common.joints import JOINTS_PER_LEG
from exo_common.paths import share_path

G = 9.81
SPEED_GROUPS = ('VerySlow', 'Slow', 'Free', 'Fast', 'VeryFast')
# Schwartz et al. (2008) grouped walks by dimensionless speed v / sqrt(g * leg_length). These
# centres are our approximation of the group means; Lokomat-range speeds (0.5-3.2 km/h) fall in
# the two slowest groups, and speeds outside the centres use the nearest group.
GROUP_DIMENSIONLESS_SPEED = np.array([0.15, 0.28, 0.41, 0.54, 0.68])
# Walk ratio (step length / cadence) of healthy adults, about 0.0065 m/(steps/min) for a
# 1.70 m adult, nearly speed-independent (Sekiya & Nagasaki 1998, Gait Posture 7:225);
# scaled with height here.
WALK_RATIO_M_PER_SPM = 0.0065
WALK_RATIO_REFERENCE_HEIGHT_M = 1.70
# Leg length (greater trochanter to floor) as a fraction of height: Drillis & Contini, in
# Winter, Biomechanics and Motor Control of Human Movement, 4th ed., Fig. 4.1.
LEG_LENGTH_FRACTION = 0.530


@functools.lru_cache(maxsize=1)
def table() -> dict:
    """The whole derived table as stored."""
    return json.loads(share_path('data', 'normative_gait.json').read_text())


def phase_grid() -> np.ndarray:
    """Phase samples of the table, 0..1 inclusive (51 points)."""
    return np.asarray(table()['phase_percent'], dtype=float) / 100.0


def leg_length(height_m: float) -> float:
    return LEG_LENGTH_FRACTION * height_m


def dimensionless_speed(speed_mps: float, height_m: float) -> float:
    return speed_mps / math.sqrt(G * leg_length(height_m))


def _group_weights(speed_mps: float, height_m: float) -> np.ndarray:
    v_star = dimensionless_speed(speed_mps, height_m)
    v_star = float(np.clip(v_star, GROUP_DIMENSIONLESS_SPEED[0], GROUP_DIMENSIONLESS_SPEED[-1]))
    weights = np.zeros(len(SPEED_GROUPS))
    upper = int(np.searchsorted(GROUP_DIMENSIONLESS_SPEED, v_star))
    if upper == 0:
        weights[0] = 1.0
        return weights
    lower = upper - 1
    span = GROUP_DIMENSIONLESS_SPEED[upper] - GROUP_DIMENSIONLESS_SPEED[lower]
    t = (v_star - GROUP_DIMENSIONLESS_SPEED[lower]) / span
    weights[lower], weights[upper] = 1.0 - t, t
    return weights


@functools.lru_cache(maxsize=64)
def _curves(speed_mps: float, height_m: float) -> tuple[np.ndarray, np.ndarray]:
    weights = _group_weights(speed_mps, height_m)
    mean = np.zeros((len(JOINTS_PER_LEG), len(phase_grid())))
    sd = np.zeros_like(mean)
    for weight, group in zip(weights, SPEED_GROUPS):
        if weight == 0.0:
            continue
        entry = table()['speeds'][group]
        for row, joint in enumerate(JOINTS_PER_LEG):
            mean[row] += weight * np.asarray(entry['angle_mean_deg'][joint])
            sd[row] += weight * np.asarray(entry['angle_sd_deg'][joint])
    mean, sd = np.radians(mean), np.radians(sd)
    mean.setflags(write=False)
    sd.setflags(write=False)
    return mean, sd


@functools.lru_cache(maxsize=64)
def _pelvic_tilt(speed_mps: float, height_m: float) -> tuple[np.ndarray, np.ndarray]:
    weights = _group_weights(speed_mps, height_m)
    mean = np.zeros(len(phase_grid()))
    sd = np.zeros_like(mean)
    for weight, group in zip(weights, SPEED_GROUPS):
        if weight:
            entry = table()['speeds'][group]
            mean += weight * np.asarray(entry['pelvic_tilt_mean_deg'])
            sd += weight * np.asarray(entry['pelvic_tilt_sd_deg'])
    mean, sd = np.radians(mean), np.radians(sd)
    mean.setflags(write=False)
    sd.setflags(write=False)
    return mean, sd


def pelvic_tilt(speed_mps: float, height_m: float = 1.75) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of the sagittal pelvic tilt (anterior +) over one cycle, (51,) rad each."""
    return _pelvic_tilt(round(float(speed_mps), 4), round(float(height_m), 4))


def joint_curves(speed_mps: float, height_m: float = 1.75) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of hip, knee, ankle angle over one cycle at a walking speed.

    Args:
        speed_mps: walking (treadmill) speed in m/s.
        height_m: the walker's height, for the dimensionless speed.

    Returns:
        (mean, sd), each shape (3, 51), rad, rows hip/knee/ankle, columns phase_grid().
    """
    return _curves(round(float(speed_mps), 4), round(float(height_m), 4))


def sample(curves: np.ndarray, phase) -> np.ndarray:
    """Periodic linear interpolation of (3, 51) curves at phase(s) in cycles (any real)."""
    grid = phase_grid()
    wrapped = np.mod(phase, 1.0)
    return np.stack([np.interp(wrapped, grid, row) for row in curves])


# --- the pattern of a device with an upright pelvis ----------------------------------------

@dataclass(frozen=True)
class SwingClearance:
    """Device adjustment for toe clearance in swing (not part of the normative data).

    A free walker clears the swing foot partly with pelvic tilt and obliquity; with the pelvis
    held upright and level (Lokomat-style guidance) the normative pattern, hip taken relative
    to the vertical, runs the swing toe 1.5-3 cm into the belt in early and mid swing. Lokomat
    practice is to add swing knee flexion, and its foot lifters hold the ankle dorsiflexed in
    swing; both are added here as sin^2 bumps over the windows below (cycle fractions):

        knee += knee_deg  * sin^2 over KNEE_WINDOW   (from opposite heel strike to late swing)
        ankle += ankle_deg * sin^2 over ANKLE_WINDOW (after toe-off to late swing)
    """
    knee_deg: float = 0.0
    ankle_deg: float = 0.0

    KNEE_WINDOW = (0.50, 0.95)
    ANKLE_WINDOW = (0.65, 0.95)

    def scaled(self, factor: float) -> 'SwingClearance':
        return SwingClearance(self.knee_deg * factor, self.ankle_deg * factor)


NO_CLEARANCE = SwingClearance()
# The smallest adjustment (in 1 deg knee steps, ankle half of knee) that keeps the lowest point
# of the swing foot >= MIN_TOE_CLEARANCE_M above the stance foot from phase 0.65 (toe-off in
# this geometry) to 0.93 (descent to heel strike) at 2 km/h in the project's URDF (checked by
# test/test_sim_core.py with the MuJoCo model).
DEVICE_CLEARANCE = SwingClearance(knee_deg=20.0, ankle_deg=10.0)


@dataclass(frozen=True)
class HeelStrikeAlignment:
    """Device adjustment that makes the leading heel land at phase 0 (not normative data).

    With the pelvis upright and level, the normative pattern holds the leading heel about
    15 mm above the trailing toe at heel strike (a free walker closes that gap with pelvic
    obliquity, rotation and drop), so the heel would land only at about 12 % of the cycle and
    the trailing leg would carry the body through its whole pre-swing. Extra dorsiflexion of
    both ankles around double support lowers the leading heel and lifts the trailing toe:

        ankle += ankle_deg * sin^2 over each of WINDOWS (around heel strike, and half a cycle
                 later around the same leg's toe-off, when it is the trailing leg)
    """
    ankle_deg: float = 0.0

    WINDOWS = ((-0.10, 0.16), (0.40, 0.66))

    def offset(self, phase) -> np.ndarray:
        """Ankle offset (rad) at phases (cycles)."""
        bump = sum(sin2_window(np.asarray(phase) - start, 0.0, end - start) for start, end in self.WINDOWS)
        return math.radians(self.ankle_deg) * bump


NO_ALIGNMENT = HeelStrikeAlignment()
# Leading heel within about 5 mm of the trailing toe from phase 0 to 0.12 at 2 km/h in the
# project's URDF (checked by test/test_sim_core.py with the MuJoCo model).
DEVICE_ALIGNMENT = HeelStrikeAlignment(ankle_deg=4.0)
# Minimum toe clearance of healthy walkers, 1.29 +- 0.45 cm (Winter 1992, "Foot trajectory in
# human gait: a precise and multifactorial motor control task", Phys Ther 72:45-53).
MIN_TOE_CLEARANCE_M = 0.0129


def sin2_window(phase, start: float, end: float) -> np.ndarray:
    """sin^2 bump from start to end (cycle fractions, phase wrapped into 0..1), zero outside."""
    x = (np.mod(phase, 1.0) - start) / (end - start)
    return np.where((x > 0.0) & (x < 1.0), np.sin(np.pi * np.clip(x, 0.0, 1.0)) ** 2, 0.0)


def periodic_spline(curves: np.ndarray) -> CubicSpline:
    """C2 periodic spline through (rows, 51) curves on phase_grid() (the last column is set to
    the first, the data's 0 % and 100 % differ by measurement noise only)."""
    closed = np.array(curves, dtype=float)
    closed[..., -1] = closed[..., 0]
    return CubicSpline(phase_grid(), closed, axis=-1, bc_type='periodic')


@functools.lru_cache(maxsize=None)
def _group_device_splines(group: int) -> tuple[CubicSpline, CubicSpline]:
    """Periodic splines of one speed group's upright-pelvis mean curves and SD (rad)."""
    entry = table()['speeds'][SPEED_GROUPS[group]]
    mean = np.radians([entry['angle_mean_deg'][joint] for joint in JOINTS_PER_LEG])
    sd = np.radians([entry['angle_sd_deg'][joint] for joint in JOINTS_PER_LEG])
    mean[0] -= np.radians(entry['pelvic_tilt_mean_deg'])
    return periodic_spline(mean), periodic_spline(sd)


def _group_upright(group: int, wrapped: np.ndarray) -> np.ndarray:
    """One speed group's upright-pelvis (mean, sd) stacked, (2, 3, n), at phases in [0, 1)."""
    mean_spline, sd_spline = _group_device_splines(group)
    return np.stack((mean_spline(wrapped), sd_spline(wrapped)))


def device_curves(speed_mps: float, height_m: float = 1.75,
                  clearance: SwingClearance = DEVICE_CLEARANCE,
                  phase=None, alignment: HeelStrikeAlignment = DEVICE_ALIGNMENT) -> tuple[np.ndarray, np.ndarray]:
    """The healthy pattern as executed with an upright pelvis, mean and SD per joint.

    Hip is the thigh relative to the vertical: normative hip minus the normative pelvic tilt
    of the same phase and speed (the SD is the hip's own; the data give no covariance with the
    tilt). Knee and ankle are unchanged but for the swing clearance adjustment and the
    heel-strike alignment of the ankle.

    Args:
        speed_mps, height_m: as joint_curves().
        clearance: swing clearance adjustment (NO_CLEARANCE for the bare upright-pelvis data).
        phase: phases (cycles) to evaluate at with a periodic cubic spline (smooth velocity);
            None: phase_grid() without interpolation.
        alignment: heel-strike ankle adjustment (NO_ALIGNMENT for none).

    Returns:
        (mean, sd), each (3, len(phase)), rad, rows hip/knee/ankle.
    """
    if phase is None:
        mean, sd = joint_curves(speed_mps, height_m)
        tilt, _ = pelvic_tilt(speed_mps, height_m)
        upright = np.array(mean)
        upright[0] -= tilt
        phase = phase_grid()
    else:
        # The data mix linearly between speed groups and a spline is linear in its data: mixing
        # each group's (cached) spline gives the same curves without building splines per call.
        phase = np.asarray(phase, dtype=float)
        wrapped = np.mod(phase, 1.0)
        upright, sd = mix_speed_groups(speed_mps, height_m, lambda group: _group_upright(group, wrapped))
    return _with_device_adjustments(upright, phase, clearance, alignment), np.array(sd)


PELVIS_GUIDANCE = ('upright', 'free')


def measured_band(speed_mps: float, height_m: float = 1.75, pelvis: str = 'upright') -> tuple[np.ndarray, np.ndarray]:
    """What an exoskeleton's joint encoders read on a healthy walker: mean and SD per joint
    (rad, rows hip/knee/ankle, on phase_grid()), the band a patient's joint curves are set against.

    Args:
        speed_mps, height_m: as joint_curves().
        pelvis: 'upright' - the device holds the pelvis upright (treadmill exoskeletons with
            pelvis guidance, Lokomat-style): the hip encoder reads the thigh against the vertical,
            about 11 deg less flexed than the clinical hip (device_curves() without the
            controller's adjustments); 'free' - the pelvis moves with the wearer (over-ground
            exoskeletons): the thigh against the pelvis, the clinical convention (joint_curves()).

    Raises:
        ValueError: pelvis is neither.
    """
    if pelvis == 'free':
        return joint_curves(speed_mps, height_m)
    if pelvis == 'upright':
        return device_curves(speed_mps, height_m, NO_CLEARANCE, None, NO_ALIGNMENT)
    raise ValueError(f'pelvis must be one of {PELVIS_GUIDANCE}, got {pelvis!r}')


def _with_device_adjustments(upright: np.ndarray, phase: np.ndarray, clearance: SwingClearance,
                             alignment: HeelStrikeAlignment) -> np.ndarray:
    upright[1] += math.radians(clearance.knee_deg) * sin2_window(phase, *SwingClearance.KNEE_WINDOW)
    upright[2] += math.radians(clearance.ankle_deg) * sin2_window(phase, *SwingClearance.ANKLE_WINDOW)
    upright[2] += alignment.offset(phase)
    return upright


def speed_group_weights(speed_mps: float, height_m: float = 1.75) -> np.ndarray:
    """How the pattern at a walking speed mixes the data's speed groups (SPEED_GROUPS order;
    at most two non-zero, summing to 1). Every curve here is linear in these weights, so a
    caller that needs curves at many speeds can mix per-group curves (mix_speed_groups)."""
    return _group_weights(round(float(speed_mps), 4), round(float(height_m), 4))


def mix_speed_groups(speed_mps: float, height_m: float, per_group) -> np.ndarray:
    """The sum of weight * per_group(group) over the speed groups a walking speed mixes
    (speed_group_weights): a new array, per_group's (cached) results are left as they are.

    Args:
        per_group: group index -> array (anything linear in the data: curves, their
            derivatives, scaled curves), the same shape for every group.
    """
    mixed = None
    for group, weight in enumerate(speed_group_weights(speed_mps, height_m)):
        if weight:
            part = weight * per_group(group)
            mixed = part if mixed is None else mixed + part
    return mixed


def group_device_curves(group: int, phase, clearance: SwingClearance = DEVICE_CLEARANCE,
                        alignment: HeelStrikeAlignment = DEVICE_ALIGNMENT) -> tuple[np.ndarray, np.ndarray]:
    """device_curves() of one speed group (index into SPEED_GROUPS) at phases (cycles): mixed
    with speed_group_weights() they give device_curves() at any speed."""
    phase = np.asarray(phase, dtype=float)
    mean, sd = _group_upright(group, np.mod(phase, 1.0))
    return _with_device_adjustments(mean, phase, clearance, alignment), sd


def cadence_steps_per_min(speed_mps: float, height_m: float = 1.75) -> float:
    """Healthy cadence at a speed from the walk ratio: v = WR * c^2 / 60."""
    walk_ratio = WALK_RATIO_M_PER_SPM * height_m / WALK_RATIO_REFERENCE_HEIGHT_M
    return math.sqrt(60.0 * max(speed_mps, 1e-3) / walk_ratio)


def stride_time_s(speed_mps: float, height_m: float = 1.75) -> float:
    """Healthy stride (gait cycle) duration at a speed: two steps."""
    return 2.0 * 60.0 / cadence_steps_per_min(speed_mps, height_m)


def step_length_m(speed_mps: float, height_m: float = 1.75) -> float:
    return speed_mps * stride_time_s(speed_mps, height_m) / 2.0


def emg_windows() -> dict[str, list[tuple[float, float]]]:
    """Normal on-windows per contract muscle, as (start, end) gait-cycle fractions."""
    return {muscle: [(a / 100.0, b / 100.0) for a, b in windows]
            for muscle, windows in table()['emg_windows_percent'].items()}


def stance_fraction() -> float:
    return table()['normal_stance_percent'] / 100.0
