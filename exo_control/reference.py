"""Healthy reference gait for the six joints, at a speed, with therapist scaling.

The curves are exo_common.normative.device_curves (Schwartz et al. 2008, multi-speed, hip
relative to the vertical for the upright guided pelvis, with the device's swing clearance
adjustment): the same pattern the simulated patient walks. They are sampled into
plain-float tables once per parameter set so that one control step only interpolates. A change
of speed or scaling builds a new table and cross-fades to it (smoothstep over blend_time_s), so
the reference never steps. The phase rate (strides per second) fades the same way.

Scaling (what a therapist adjusts on a Lokomat-style device):
- step_length_scale scales the hip excursion about its cycle mean (step length follows the
  hip's flexion-extension range);
- step_height_scale scales the knee flexion in swing (the main determinant of foot clearance),
  faded in and out with a sin^2 window over swing so stance is unchanged and the curve stays
  continuous at toe-off and heel strike.
"""
import functools
from typing import NamedTuple, Optional, Sequence

import numpy as np

from exo_common import normative
from exo_common.joints import JOINTS_PER_LEG

TABLE_SIZE = 500  # samples per cycle: 0.2 % of the cycle, far below the data's 2 % grid
HIP, KNEE, ANKLE = range(len(JOINTS_PER_LEG))


def smoothstep(x: float) -> float:
    """0 at x <= 0, 1 at x >= 1, C1-continuous in between."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


def build_curves(speed_mps: float, step_length_scale: float, step_height_scale: float,
                 height_m: float, size: int = TABLE_SIZE) -> np.ndarray:
    """Scaled one-leg curves, shape (3, size + 1), rad, rows hip/knee/ankle, phase k / size.

    The scaling is affine and the curves linear in the speed-group weights, so the curves are
    mixed from cached per-group ones (a belt ramp asks for a new speed ten times a second).
    """
    return normative.mix_speed_groups(speed_mps, height_m, lambda group: _group_curves(
        group, float(step_length_scale), float(step_height_scale), size))


@functools.lru_cache(maxsize=64)
def _group_curves(group: int, step_length_scale: float, step_height_scale: float, size: int) -> np.ndarray:
    phase = np.linspace(0.0, 1.0, size + 1)
    # Spline-interpolated (continuous velocity: linear interpolation of the 2 %-grid data
    # would step the reference velocity, and the damping torque, every 2 %).
    curves, _ = normative.group_device_curves(group, phase)
    hip_mean = float(np.mean(curves[HIP, :-1]))
    curves[HIP] = hip_mean + step_length_scale * (curves[HIP] - hip_mean)
    curves[KNEE] = curves[KNEE] * (1.0 + (step_height_scale - 1.0)
                                   * normative.sin2_window(phase, normative.stance_fraction(), 1.0))
    curves.setflags(write=False)
    return curves


class _Table(NamedTuple):
    """One parameter set's curves: arrays for whole-table math, nested lists for the per-step
    interpolation (indexing a list is several times faster than indexing an array)."""
    position: np.ndarray  # (3, TABLE_SIZE + 1) rad
    slope: np.ndarray     # d angle / d phase, rad per cycle
    rate: float           # strides per second
    position_rows: list
    slope_rows: list

    @classmethod
    def of(cls, position: np.ndarray, slope: np.ndarray, rate: float) -> '_Table':
        return cls(position, slope, rate, position.tolist(), slope.tolist())


class GaitReference:
    """Reference angles of one leg's three joints as a function of that leg's phase.

    Args:
        speed_mps: walking speed the curves and the cadence follow.
        step_length_scale, step_height_scale: therapist scaling (1 = normative).
        height_m: patient height (dimensionless speed, cadence).
        blend_time_s: duration of the cross-fade after any change.
        lower, upper: per leg joint (hip, knee, ankle) limits in rad the reference stays within.
    """

    def __init__(self, speed_mps: float, step_length_scale: float = 1.0,
                 step_height_scale: float = 1.0, height_m: float = 1.75, blend_time_s: float = 2.0,
                 lower: Optional[Sequence[float]] = None, upper: Optional[Sequence[float]] = None):
        self.height_m = height_m
        self.blend_time_s = blend_time_s
        self._lower = list(lower) if lower is not None else None
        self._upper = list(upper) if upper is not None else None
        self.settings = (speed_mps, step_length_scale, step_height_scale)
        self._new = self._table(*self.settings)
        self._old = self._new
        self._blend = 1.0
        self._fade_time = blend_time_s

    def _table(self, speed_mps, step_length_scale, step_height_scale) -> _Table:
        curves = build_curves(speed_mps, step_length_scale, step_height_scale, self.height_m)
        if self._lower is not None:
            curves = np.clip(curves, np.asarray(self._lower)[:, None], np.asarray(self._upper)[:, None])
        rate = 1.0 / normative.stride_time_s(speed_mps, self.height_m)
        slopes = np.gradient(curves, 1.0 / (curves.shape[1] - 1), axis=1)
        return _Table.of(curves, slopes, rate)

    def set_target(self, speed_mps: Optional[float] = None, step_length_scale: Optional[float] = None,
                   step_height_scale: Optional[float] = None, blend_time_s: Optional[float] = None) -> None:
        """Start a cross-fade to new settings (None keeps a setting); no-op when unchanged.

        blend_time_s: this cross-fade's duration (default: the blend_time_s attribute).
        """
        target = tuple(old if new is None else float(new) for old, new in
                       zip(self.settings, (speed_mps, step_length_scale, step_height_scale)))
        if target == self.settings:
            return
        if self._blend < 1.0:
            self._freeze_blend()
        self.settings = target
        self._old = self._new
        self._new = self._table(*target)
        self._fade_time = self.blend_time_s if blend_time_s is None else blend_time_s
        self._blend = 0.0 if self._fade_time > 0.0 else 1.0

    def _freeze_blend(self) -> None:
        """Make the current mix the new starting table (a change arrived mid-fade)."""
        w = smoothstep(self._blend)
        old, new = self._old, self._new
        self._new = _Table.of(old.position + w * (new.position - old.position),
                              old.slope + w * (new.slope - old.slope),
                              old.rate + w * (new.rate - old.rate))

    def advance(self, dt: float) -> None:
        if self._blend < 1.0:
            self._blend = min(1.0, self._blend + dt / self._fade_time)

    @property
    def blending(self) -> bool:
        return self._blend < 1.0

    @property
    def stride_rate(self) -> float:
        """Strides per second the reference implies now (faded like the curves)."""
        w = smoothstep(self._blend)
        return self._old.rate + w * (self._new.rate - self._old.rate)

    def sample_leg(self, phase: float, out_pos: list, out_slope: list, offset: int = 0) -> None:
        """Write hip, knee, ankle angle (rad) and d angle / d phase (rad per cycle) of one leg.

        Args:
            phase: the leg's phase in cycles (any real; wrapped).
            out_pos, out_slope: lists written at offset .. offset + 2.
        """
        x = (phase % 1.0) * TABLE_SIZE
        i = int(x)
        if i >= TABLE_SIZE:
            i = TABLE_SIZE - 1
        f = x - i
        pos, slope = self._new.position_rows, self._new.slope_rows
        for j in range(3):
            row = pos[j]
            out_pos[offset + j] = row[i] + f * (row[i + 1] - row[i])
            row = slope[j]
            out_slope[offset + j] = row[i] + f * (row[i + 1] - row[i])
        if self._blend < 1.0:
            w = smoothstep(self._blend)
            old_pos, old_slope = self._old.position_rows, self._old.slope_rows
            for j in range(3):
                row = old_pos[j]
                old = row[i] + f * (row[i + 1] - row[i])
                out_pos[offset + j] = old + w * (out_pos[offset + j] - old)
                row = old_slope[j]
                old = row[i] + f * (row[i + 1] - row[i])
                out_slope[offset + j] = old + w * (out_slope[offset + j] - old)

    def slope_power(self) -> float:
        """Cycle mean of (d hip / d phase)^2 + (d knee / d phase)^2 of the target pattern (rad^2)."""
        slope = self._new.slope
        return float(np.mean(np.square(slope[HIP, :-1])) + np.mean(np.square(slope[KNEE, :-1])))

    def hip_curve(self) -> np.ndarray:
        """The current target hip curve (size + 1 samples), for phase-estimator calibration."""
        return self._new.position[HIP]

    def best_phase(self, posture: Sequence[float], other_leg_lag: float = 0.5, samples: int = 100) -> float:
        """The left-leg phase whose two-leg reference posture is closest to a measured one.

        Args:
            posture: six joint angles in JOINT_NAMES order.
            other_leg_lag: phase of the right leg behind the left (0.5 in walking).
        """
        table = self._new.position
        grid = np.arange(samples) / samples
        idx_left = (grid * TABLE_SIZE).astype(int)
        idx_right = (((grid - other_leg_lag) % 1.0) * TABLE_SIZE).astype(int)
        q = np.asarray(posture, dtype=float)
        cost = (np.sum((table[:, idx_left] - q[:3, None]) ** 2, axis=0)
                + np.sum((table[:, idx_right] - q[3:, None]) ** 2, axis=0))
        return float(grid[int(np.argmin(cost))])
