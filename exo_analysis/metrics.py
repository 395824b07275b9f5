"""Per-stride gait metrics from joint angles and gait events (plain numpy, no rclpy).

Definitions (one stride of a leg = from its heel strike to its next heel strike):
- stride time T (s); cadence = 120 / T steps/min (two steps a stride).
- stance % = (toe off - heel strike) / T * 100; swing % = 100 - stance %.
- double support % = (initial double support: own heel strike -> other leg's toe off, plus
  terminal double support: other leg's heel strike -> own toe off) / T * 100.
- step length (m): exo_analysis.kinematics at the heel strike ending the stride; step time:
  that heel strike minus the other leg's previous one.
- range of motion per joint: max - min over the stride (deg).
- deviation from the normative band at the current speed (exo_common.normative): the joint
  curve is resampled on the 51 phase points; the RMS difference to the normative mean is the
  Gait Variable Score (GVS, deg) of Baker et al. 2009 (Gait Posture 30:265), and the RMS of a
  leg's three sagittal GVS is our Gait-Profile-Score-like summary (the GPS proper uses nine
  kinematic variables in three planes; we only measure the sagittal joints). band_out is the
  share of the cycle outside mean +- 1 SD.
- symmetry index (Robinson et al. 1987, J Manipulative Physiol Ther 10:172):
  SI = (X_left - X_right) / (0.5 * (X_left + X_right)) * 100 %; 0 = symmetric, positive = left
  larger.
- biofeedback (Lokomat-style, per joint, stance and swing separately): the mean over the phase
  of -tau * sign(reference velocity), tau = torque the controller requests
  (/gait_controller/effort_request). Negative: the robot has to drive the joint along the
  reference (passive patient); near 0 or positive: the patient moves the joint on their own or
  ahead of the robot. In N m, like the Lokomat's torque-based values (Banz et al. 2008,
  J Rehabil Res Dev 45:957).
"""
from dataclasses import dataclass, field
import math
from typing import Optional

import numpy as np

from exo_common import normative
from exo_common.joints import JOINTS_PER_LEG

PHASE_POINTS = 51


@dataclass
class StrideMetrics:
    leg: str
    start: float                       # s, heel strike opening the stride
    end: float                         # s, heel strike closing it
    speed_mps: float
    stride_time_s: float
    cadence_spm: float
    stance_percent: float = math.nan
    swing_percent: float = math.nan
    double_support_percent: float = math.nan
    step_length_m: float = math.nan
    step_time_s: float = math.nan
    rom_deg: dict = field(default_factory=dict)           # joint -> deg
    gvs_deg: dict = field(default_factory=dict)           # joint -> deg
    band_out_percent: dict = field(default_factory=dict)  # joint -> %
    gps_deg: float = math.nan
    swing_knee_flexion_deg: float = math.nan              # peak knee flexion in swing
    swing_ankle_dorsiflexion_deg: float = math.nan        # peak dorsiflexion in swing
    biofeedback_nm: dict = field(default_factory=dict)    # 'hip.stance' -> N m
    curves_rad: Optional[np.ndarray] = None               # (3, 51) hip, knee, ankle

    def scalars(self) -> dict:
        """Flat name -> number (no curves), for JSON, topics and the session store."""
        values = {name: getattr(self, name) for name in (
            'stride_time_s', 'cadence_spm', 'stance_percent', 'swing_percent',
            'double_support_percent', 'step_length_m', 'step_time_s', 'gps_deg',
            'swing_knee_flexion_deg', 'swing_ankle_dorsiflexion_deg', 'speed_mps')}
        for group in ('rom_deg', 'gvs_deg', 'band_out_percent', 'biofeedback_nm'):
            for key, value in getattr(self, group).items():
                values[f'{key}.{group}'] = value
        return values


def symmetry_index(left: float, right: float) -> float:
    """Robinson's symmetry index in %, NaN when undefined (mean 0 or a value missing)."""
    mean = 0.5 * (left + right)
    if not (math.isfinite(left) and math.isfinite(right)) or mean == 0.0:
        return math.nan
    return (left - right) / mean * 100.0


def resample_cycle(times: np.ndarray, angles: np.ndarray, start: float, end: float) -> np.ndarray:
    """Angles (N, 3) at times (N,) resampled at PHASE_POINTS phases from start to end: (3, 51)."""
    phase_times = np.linspace(start, end, PHASE_POINTS)
    return np.stack([np.interp(phase_times, times, angles[:, k]) for k in range(angles.shape[1])])


def deviation_from_band(curves: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """GVS per joint (deg), GPS-like summary (deg) and % of the cycle outside mean +- 1 SD."""
    difference = np.degrees(curves - mean)
    gvs = np.sqrt(np.mean(difference ** 2, axis=1))
    gps = float(np.sqrt(np.mean(gvs ** 2)))
    outside = np.abs(curves - mean) > sd
    return gvs, gps, outside.mean(axis=1) * 100.0


def stride_metrics(leg: str, start: float, end: float, *, toe_off: float = math.nan,
                   other_toe_off: float = math.nan, other_heel_strike: float = math.nan,
                   other_previous_heel_strike: float = math.nan,
                   times: Optional[np.ndarray] = None, angles: Optional[np.ndarray] = None,
                   step_length_m: float = math.nan, speed_mps: float = math.nan,
                   height_m: float = 1.75, effort: Optional[tuple] = None,
                   pelvis: str = 'upright') -> StrideMetrics:
    """Metrics of one stride.

    Args:
        leg: 'left' or 'right'.
        start, end: heel strikes of this leg opening and closing the stride (s).
        toe_off: this leg's toe off within the stride (NaN if not detected).
        other_toe_off: the other leg's toe off after `start` (ends initial double support).
        other_heel_strike: the other leg's heel strike within the stride.
        other_previous_heel_strike: the other leg's last heel strike before `end` (step time).
        times, angles: this leg's hip/knee/ankle angles (N, 3) in rad covering the stride.
        step_length_m: from exo_analysis.kinematics at `end`.
        speed_mps: walking speed for the normative band (NaN: no deviation scores).
        height_m: the patient's height, for the normative band.
        effort: optional (times (M,), torque (M, 3), reference velocity (M, 3)) for biofeedback.
        pelvis: what the hip encoder measures against (normative.measured_band).
    """
    duration = end - start
    result = StrideMetrics(leg, start, end, speed_mps, duration, 120.0 / duration,
                           step_length_m=step_length_m)
    if start < other_previous_heel_strike < end:
        result.step_time_s = end - other_previous_heel_strike
    if start < toe_off < end:
        result.stance_percent = (toe_off - start) / duration * 100.0
        result.swing_percent = 100.0 - result.stance_percent
        if start < other_toe_off < toe_off and other_toe_off < other_heel_strike < toe_off:
            double = (other_toe_off - start) + (toe_off - other_heel_strike)
            result.double_support_percent = double / duration * 100.0
    if times is not None and len(times) >= 4 and times[0] <= start + 0.05 and times[-1] >= end - 0.05:
        curves = resample_cycle(times, angles, start, end)
        result.curves_rad = curves
        degrees = np.degrees(curves)
        result.rom_deg = {joint: float(np.ptp(degrees[k])) for k, joint in enumerate(JOINTS_PER_LEG)}
        if math.isfinite(result.stance_percent):
            swing = np.linspace(0.0, 100.0, PHASE_POINTS) >= result.stance_percent
            if swing.any():
                result.swing_knee_flexion_deg = float(degrees[1][swing].max())
                result.swing_ankle_dorsiflexion_deg = float(degrees[2][swing].max())
        if math.isfinite(speed_mps) and speed_mps > 0.0:
            mean, sd = normative.measured_band(speed_mps, height_m, pelvis)
            gvs, gps, outside = deviation_from_band(curves, mean, sd)
            result.gvs_deg = dict(zip(JOINTS_PER_LEG, map(float, gvs)))
            result.band_out_percent = dict(zip(JOINTS_PER_LEG, map(float, outside)))
            result.gps_deg = gps
    if effort is not None and math.isfinite(toe_off):
        result.biofeedback_nm = biofeedback(*effort, start, toe_off, end)
    return result


def biofeedback(times: np.ndarray, torque: np.ndarray, reference_velocity: np.ndarray,
                start: float, toe_off: float, end: float) -> dict:
    """Mean of -torque * sign(reference velocity) per joint in stance and in swing (N m)."""
    values = {}
    signed = -torque * np.sign(reference_velocity)
    for phase, low, high in (('stance', start, toe_off), ('swing', toe_off, end)):
        inside = (times >= low) & (times < high)
        if not inside.any():
            continue
        means = signed[inside].mean(axis=0)
        for k, joint in enumerate(JOINTS_PER_LEG):
            values[f'{joint}.{phase}'] = float(means[k])
    return values
