"""Per-joint interlocks: torque clamp, torque rate limit, soft and hard position zones, velocity.

Plain Python, no rclpy; every function works on sequences of six plain floats in JOINT_NAMES
order, which is several times faster than numpy for vectors this short. Joint limits come from
outside (exo_common.description.joint_limits(), i.e. the URDF): nothing here knows a number.

Sign convention: positive torque drives a joint towards larger positions (its upper limit).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence


class Violation(NamedTuple):
    """A limit broken by a measured or requested value."""
    code: str   # exo_safety.events.FaultCode value
    index: int  # joint index in JOINT_NAMES order (-1: not a joint)
    value: float
    limit: float


def all_finite(values: Sequence[float]) -> bool:
    """True when no value is NaN or +-Inf (one C-level sum; inf - inf and NaN - NaN are NaN)."""
    total = sum(values)
    return total - total == 0.0


def first_non_finite(values: Sequence[float]) -> tuple[int, float]:
    """(index, value) of the first NaN/Inf, or (-1, 0.0)."""
    for index, value in enumerate(values):
        if not math.isfinite(value):
            return index, value
    return -1, 0.0


class Envelope:
    """The allowed region of each joint, precomputed as plain lists for the hot path.

    Args:
        limits: per joint, in JOINT_NAMES order, objects with name, lower, upper (rad),
            velocity (rad/s) and effort (N m): exo_common.description.JointLimits.
        effort_fraction: share of the URDF effort limit a command may use.
        soft_zone: width inside each position limit where torque towards the limit is removed (rad).
        hard_margin: how far beyond a URDF position limit a measured position faults (rad).
        velocity_fraction: share of the URDF velocity limit above which a joint faults.
        velocity_gain: soft velocity limit (N m s/rad): the torque a command may apply in the
            direction of motion shrinks as gain x (limit - |velocity|), to zero at the limit and
            to braking beyond it - the effort soft-limit law of ros2_control's joint_limits
            (k_velocity of a URDF <safety_controller>). 0 = off.

    Raises:
        ValueError: non-finite or inconsistent limits, or a soft zone wider than half a range.
    """

    def __init__(self, limits: Sequence, effort_fraction: float = 1.0, soft_zone: float = 0.05,
                 hard_margin: float = 0.01, velocity_fraction: float = 1.0,
                 velocity_gain: float = 0.0):
        self.names = tuple(limit.name for limit in limits)
        for limit in limits:
            numbers = (limit.lower, limit.upper, limit.velocity, limit.effort)
            if not all(math.isfinite(n) for n in numbers):
                raise ValueError(f'{limit.name}: limits must be finite, got {numbers}')
            if not limit.lower < limit.upper or limit.velocity <= 0.0 or limit.effort <= 0.0:
                raise ValueError(f'{limit.name}: need lower < upper and positive velocity and '
                                 f'effort limits, got {numbers}')
            if 2.0 * soft_zone >= limit.upper - limit.lower:
                raise ValueError(f'{limit.name}: soft zone {soft_zone} rad leaves no free range '
                                 f'within [{limit.lower}, {limit.upper}] rad')
        self.effort_max = [limit.effort * effort_fraction for limit in limits]
        self.soft_lower = [limit.lower + soft_zone for limit in limits]
        self.soft_upper = [limit.upper - soft_zone for limit in limits]
        self.hard_lower = [limit.lower - hard_margin for limit in limits]
        self.hard_upper = [limit.upper + hard_margin for limit in limits]
        self.velocity_max = [limit.velocity * velocity_fraction for limit in limits]
        self.velocity_gain = velocity_gain

    def measured_violation(self, position: Sequence[float], velocity: Sequence[float]) -> Optional[Violation]:
        """The first hard position or velocity limit a measured state breaks, else None."""
        for index, (q, low, high) in enumerate(zip(position, self.hard_lower, self.hard_upper)):
            if q < low:
                return Violation('POSITION_LIMIT', index, q, low)
            if q > high:
                return Violation('POSITION_LIMIT', index, q, high)
        for index, (dq, limit) in enumerate(zip(velocity, self.velocity_max)):
            if dq > limit or dq < -limit:
                return Violation('VELOCITY_LIMIT', index, dq, limit)
        return None

    def shape(self, request: Sequence[float], previous: Sequence[float], position: Sequence[float],
              max_step: float, scale: float = 1.0, velocity: Optional[Sequence[float]] = None) -> list[float]:
        """The command for a (finite) request.

        Clamp to the effort limit and scale (engagement ramp); limit the change from the
        previous command to max_step; clamp again (the previous command may exceed a limit
        lowered live) and to the soft velocity limit; remove torque that pushes into a soft
        zone. Safety wins over smoothness: the last three steps are never rate limited.

        Args:
            request: requested torques (N m).
            previous: the command sent last cycle (N m).
            position: measured positions (rad).
            max_step: largest change of a torque from the previous command (N m).
            scale: 0..1 factor applied after the clamp.
            velocity: measured velocities (rad/s) for the soft velocity limit (None: not applied).
        """
        command = []
        append = command.append
        gain = self.velocity_gain if velocity is not None else 0.0
        if velocity is None:
            velocity = self.velocity_max
        for r, p, q, dq, e, v, low, high in zip(request, previous, position, velocity, self.effort_max,
                                                self.velocity_max, self.soft_lower, self.soft_upper):
            t = (e if r > e else -e if r < -e else r) * scale
            if t > p + max_step:
                t = p + max_step
            elif t < p - max_step:
                t = p - max_step
            upper, lower = e, -e
            if gain:
                upper = min(e, max(-e, gain * (v - dq)))
                lower = max(-e, min(e, -gain * (v + dq)))
            if t > upper:
                t = upper
            elif t < lower:
                t = lower
            if (t > 0.0 and q >= high) or (t < 0.0 and q <= low):
                t = 0.0
            append(t)
        return command

    def damping(self, gains: Sequence[float], position: Sequence[float],
                velocity: Sequence[float]) -> list[float]:
        """Joint damping -gain * velocity, clamped, with the soft zones respected.

        A joint whose position or velocity is not finite gets zero torque.
        """
        command = []
        for g, q, dq, e, low, high in zip(gains, position, velocity, self.effort_max,
                                          self.soft_lower, self.soft_upper):
            t = 0.0 - g * dq  # 0.0 - x: no negative zeros in the published command
            if not (math.isfinite(t) and math.isfinite(q)):
                t = 0.0
            elif t > e:
                t = e
            elif t < -e:
                t = -e
            if (t > 0.0 and q >= high) or (t < 0.0 and q <= low):
                t = 0.0
            command.append(t)
        return command

    def posture_mismatch(self, reference: Sequence[float], position: Sequence[float],
                         tolerance: float) -> int:
        """Index of the first joint whose reference is further than tolerance from the
        measured position (-1: the reference starts from the current posture)."""
        for index, (r, q) in enumerate(zip(reference, position)):
            if not -tolerance <= r - q <= tolerance:
                return index
        return -1


def tilt_from_vertical(x: float, y: float, z: float, w: float) -> float:
    """Angle (rad) between a body's z axis and the world z axis, for an orientation quaternion.

    The body z axis in world coordinates has z component 1 - 2(x^2 + y^2) for a unit
    quaternion; dividing by the squared norm tolerates a slightly non-unit one.

    Raises:
        ValueError: zero or non-finite quaternion.
    """
    norm2 = x * x + y * y + z * z + w * w
    if not (norm2 > 0.0 and math.isfinite(norm2)):
        raise ValueError(f'not an orientation: quaternion ({x}, {y}, {z}, {w})')
    cos_tilt = 1.0 - 2.0 * (x * x + y * y) / norm2
    return math.acos(max(-1.0, min(1.0, cos_tilt)))
