"""Planar leg kinematics for step length, with segment lengths read from the URDF.

The thigh length is the distance from the hip to the knee joint origin, the shank length from
the knee to the ankle joint origin (the `<origin>` of `<side>_knee_joint` and
`<side>_ankle_joint` in their parent links). Sagittal plane, pelvis as the common origin, joint
angles in the project convention (hip flexion +, knee flexion +): the shank's forward tilt is
hip - knee, so the ankle lies ahead of the hip by

    x_ankle = L_thigh * sin(hip) + L_shank * sin(hip - knee).

Step length at a heel strike = x_ankle(leading leg) - x_ankle(trailing leg): the distance
between the ankles along the walking direction. Pelvis pitch rotates both legs alike and
changes this by the factor cos(pitch) only while both ankles are near the floor (< 0.5 % for
pitch < 6 deg), so it is ignored.
"""
from dataclasses import dataclass
import math
import xml.etree.ElementTree as ET

from exo_common.joints import LEGS


class KinematicsError(ValueError):
    """The URDF lacks a joint or origin needed for the leg kinematics."""


@dataclass(frozen=True)
class LegSegments:
    thigh: float  # m
    shank: float  # m


def segments_from_urdf(urdf_xml: str) -> dict[str, LegSegments]:
    """Thigh and shank length of each leg from the joint origins of a URDF.

    Raises:
        KinematicsError: missing joint or origin, or a non-positive length.
    """
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as exc:
        raise KinematicsError(f'URDF is not valid XML: {exc}') from exc
    origins = {}
    for joint in root.findall('joint'):  # not the ros2_control <joint> tags
        origin = joint.find('origin')
        xyz = [0.0, 0.0, 0.0]
        if origin is not None and origin.get('xyz'):
            xyz = [float(v) for v in origin.get('xyz').split()]
        origins[joint.get('name')] = xyz
    segments = {}
    for leg in LEGS:
        lengths = []
        for joint in (f'{leg}_knee_joint', f'{leg}_ankle_joint'):
            if joint not in origins:
                raise KinematicsError(f'URDF has no joint {joint}')
            x, _, z = origins[joint]
            length = math.hypot(x, z)
            if length <= 0.0:
                raise KinematicsError(f'URDF joint {joint}: origin gives a segment length of {length} m')
            lengths.append(length)
        segments[leg] = LegSegments(*lengths)
    return segments


def ankle_forward(segments: LegSegments, hip: float, knee: float) -> float:
    """Horizontal position of the ankle ahead of the hip (m)."""
    return segments.thigh * math.sin(hip) + segments.shank * math.sin(hip - knee)


def step_length(segments: dict[str, LegSegments], leading: str, joints: list[float]) -> float:
    """Distance the leading leg's ankle is ahead of the other's (m) for six joint angles (rad)."""
    trailing = 'right' if leading == 'left' else 'left'
    lead_index = LEGS.index(leading) * 3
    trail_index = LEGS.index(trailing) * 3
    return (ankle_forward(segments[leading], joints[lead_index], joints[lead_index + 1])
            - ankle_forward(segments[trailing], joints[trail_index], joints[trail_index + 1]))
