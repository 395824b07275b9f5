"""The robot description (urdf/exo_gait.urdf.xacro) from Python: expand, parse, check.

The URDF is the single source of the joint limits (position, velocity, effort): read them with
`joint_limits()` instead of writing numbers anywhere else. Plain Python (no rclpy); xacro runs
in-process and results are cached per argument set, so every node may call `expand_xacro`.

`mujoco_spec_from_urdf` turns the expanded URDF into a `mujoco.MjSpec` (floating pelvis, IMU
frames kept as bodies with a site each) for the MuJoCo simulator.
"""
from __future__ import annotations

import functools
import math
import numbers
import pathlib
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from exo_common.joints import IMU_FRAMES, JOINT_NAMES
from exo_common.paths import share_path

__all__ = [
    'JOINT_NAMES', 'IMU_FRAMES', 'DescriptionError', 'JointLimits', 'RobotDescription',
    'HEIGHT_RANGE', 'MASS_RANGE', 'HARDWARE_CHOICES',
    'xacro_path', 'controllers_yaml_path', 'expand_xacro', 'parse_urdf', 'load_description',
    'joint_limits', 'controllers_joint_order', 'check_controllers_match',
    'mujoco_spec_from_urdf', 'FREE_JOINT_NAME',
]

HEIGHT_RANGE = (1.2, 2.2)   # m, patient_height
MASS_RANGE = (30.0, 200.0)  # kg, patient_mass
HARDWARE_CHOICES = ('mock', 'gazebo')
# xacro args besides the ones expand_xacro names explicitly.
_EXTRA_ARGS = ('controllers_file', 'pelvis_guide')
_BOOL_TEXT = {'true': True, 'false': False}

FREE_JOINT_NAME = 'pelvis_freejoint'  # added by mujoco_spec_from_urdf when the pelvis has no joint


class DescriptionError(ValueError):
    """A bad argument for the robot description, or a URDF / config that breaks the contract."""


@dataclass(frozen=True)
class JointLimits:
    name: str
    lower: float     # rad
    upper: float     # rad
    velocity: float  # rad/s
    effort: float    # N m


@dataclass(frozen=True)
class RobotDescription:
    urdf: str
    joints: tuple[JointLimits, ...]  # the six actuated joints, in JOINT_NAMES order
    imu_frames: dict[str, str]       # IMU frame -> parent link
    link_masses: dict[str, float]    # every link -> mass in kg (0 for massless links)
    total_mass: float                # kg


# --------------------------------------------------------------------------------------------
# xacro
# --------------------------------------------------------------------------------------------

def xacro_path() -> pathlib.Path:
    """The top-level xacro file, urdf/exo_gait.urdf.xacro."""
    return share_path('urdf', 'exo_gait.urdf.xacro')


def controllers_yaml_path() -> pathlib.Path:
    """config/ros2_controllers.yaml of this package."""
    return share_path('config', 'ros2_controllers.yaml')


def _number(name: str, value, low: float, high: float, unit: str) -> float:
    """value as a float within [low, high], else DescriptionError naming `name` and the range."""
    problem = f'{name} must be a number within [{low:g}, {high:g}] {unit}, got {value!r}'
    if isinstance(value, bool):
        raise DescriptionError(problem)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise DescriptionError(problem) from None
    elif not isinstance(value, numbers.Real):
        raise DescriptionError(problem)
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        raise DescriptionError(problem)
    return value


def _flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_TEXT:
        return _BOOL_TEXT[value.strip().lower()]
    raise DescriptionError(f'{name} must be true or false, got {value!r}')


def _check_args(patient_height, patient_mass, hardware, wearer, extra_args) -> tuple:
    height = _number('patient_height', patient_height, *HEIGHT_RANGE, 'm')
    mass = _number('patient_mass', patient_mass, *MASS_RANGE, 'kg')
    if hardware not in HARDWARE_CHOICES:
        raise DescriptionError(f'hardware must be one of {", ".join(HARDWARE_CHOICES)}; got {hardware!r}')
    wearer = _flag('wearer', wearer)
    unknown = sorted(set(extra_args) - set(_EXTRA_ARGS))
    if unknown:
        raise DescriptionError(f'unknown xacro argument(s) {unknown}; known: patient_height, patient_mass, '
                               f'hardware, wearer, {", ".join(_EXTRA_ARGS)}')
    extra = {}
    if 'pelvis_guide' in extra_args:
        extra['pelvis_guide'] = 'true' if _flag('pelvis_guide', extra_args['pelvis_guide']) else 'false'
    controllers_file = extra_args.get('controllers_file') or ''
    if hardware == 'gazebo' and not controllers_file:
        # $(find exo_gait) needs an ament index; give the xacro the absolute path instead.
        controllers_file = str(controllers_yaml_path())
    if controllers_file:
        extra['controllers_file'] = str(controllers_file)
    return height, mass, hardware, wearer, tuple(sorted(extra.items()))


_xacro_lock = threading.Lock()  # xacro keeps module-level state while processing


@functools.lru_cache(maxsize=32)
def _expand_cached(height: float, mass: float, hardware: str, wearer: bool, extra: tuple) -> str:
    import xacro  # imported here: only nodes that need the description pay for it

    mappings = {
        'patient_height': repr(height),
        'patient_mass': repr(mass),
        'hardware': hardware,
        'wearer': 'true' if wearer else 'false',
        **dict(extra),
    }
    with _xacro_lock:
        try:
            doc = xacro.process_file(str(xacro_path()), mappings=mappings)
        except xacro.XacroException as exc:
            raise DescriptionError(f'expanding {xacro_path()} failed: {exc}') from exc
    return doc.toprettyxml(indent='  ')


def expand_xacro(patient_height: float = 1.75, patient_mass: float = 75.0, hardware: str = 'mock',
                 wearer: bool = True, **extra_args) -> str:
    """The URDF XML for a patient, after checking the arguments.

    extra_args: controllers_file (absolute path; default this package's ros2_controllers.yaml
    when hardware='gazebo'), pelvis_guide (bool, gazebo only, default True).

    Raises:
        DescriptionError: an argument is invalid (the message names it and its allowed range)
            or xacro fails.
    """
    return _expand_cached(*_check_args(patient_height, patient_mass, hardware, wearer, extra_args))


# --------------------------------------------------------------------------------------------
# parsing and checks
# --------------------------------------------------------------------------------------------

def _float_attr(element: ET.Element, attr: str, what: str) -> float:
    text = element.get(attr)
    if text is None:
        raise DescriptionError(f'{what}: <limit> lacks {attr!r} '
                               '(URDF limits need lower, upper, velocity, effort)')
    try:
        return float(text)
    except ValueError:
        raise DescriptionError(f'{what}: <limit {attr}="{text}"> is not a number') from None


def parse_urdf(urdf_xml: str) -> RobotDescription:
    """Joint limits, IMU frames and masses of a URDF.

    Raises:
        DescriptionError: not XML / not a <robot>; an actuated joint (JOINT_NAMES) is missing,
            is not revolute, lacks lower/upper/velocity/effort, or the joints are out of
            JOINT_NAMES order (in the URDF or in its <ros2_control> block); an IMU frame is missing.
    """
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as exc:
        raise DescriptionError(f'URDF is not valid XML: {exc}') from exc
    if root.tag != 'robot':
        raise DescriptionError(f'URDF root element is <{root.tag}>, expected <robot>')

    joints = root.findall('joint')
    by_name = {j.get('name'): j for j in joints}
    missing = [name for name in JOINT_NAMES if name not in by_name]
    if missing:
        raise DescriptionError(f'URDF lacks actuated joint(s) {missing}; expected {list(JOINT_NAMES)}')
    order = [j.get('name') for j in joints if j.get('name') in JOINT_NAMES]
    if order != list(JOINT_NAMES):
        raise DescriptionError(f'URDF actuated joints are in the order {order}; the contract order is '
                               f'{list(JOINT_NAMES)}')

    limits = []
    for name in JOINT_NAMES:
        joint = by_name[name]
        if joint.get('type') not in ('revolute', 'continuous'):
            raise DescriptionError(f'joint {name} has type {joint.get("type")!r}, expected revolute')
        limit = joint.find('limit')
        if limit is None:
            raise DescriptionError(f'joint {name} has no <limit> (needs lower, upper, velocity, effort)')
        values = {attr: _float_attr(limit, attr, f'joint {name}')
                  for attr in ('lower', 'upper', 'velocity', 'effort')}
        if not values['lower'] < values['upper'] or values['velocity'] <= 0 or values['effort'] <= 0:
            raise DescriptionError(f'joint {name}: implausible limits {values}')
        limits.append(JointLimits(name=name, **values))

    control = root.find('ros2_control')
    if control is not None:
        control_order = [j.get('name') for j in control.findall('joint')]
        if control_order != list(JOINT_NAMES):
            raise DescriptionError(f'<ros2_control> joints are {control_order}; expected {list(JOINT_NAMES)}')

    imu_frames = {}
    for joint in joints:
        child = joint.find('child')
        parent = joint.find('parent')
        if child is not None and parent is not None and child.get('link') in IMU_FRAMES:
            imu_frames[child.get('link')] = parent.get('link')
    missing_imus = [frame for frame in IMU_FRAMES if frame not in imu_frames]
    if missing_imus:
        raise DescriptionError(f'URDF lacks IMU frame(s) {missing_imus}')
    imu_frames = {frame: imu_frames[frame] for frame in IMU_FRAMES}

    link_masses = {}
    for link in root.findall('link'):
        mass = link.find('inertial/mass')
        link_masses[link.get('name')] = float(mass.get('value')) if mass is not None else 0.0
    return RobotDescription(urdf=urdf_xml, joints=tuple(limits), imu_frames=imu_frames,
                            link_masses=link_masses, total_mass=sum(link_masses.values()))


@functools.lru_cache(maxsize=32)
def _load_cached(args: tuple) -> RobotDescription:
    return parse_urdf(_expand_cached(*args))


def load_description(patient_height: float = 1.75, patient_mass: float = 75.0,
                     wearer: bool = True) -> RobotDescription:
    """Expand (mock hardware) and parse. Raises DescriptionError like expand_xacro / parse_urdf."""
    return _load_cached(_check_args(patient_height, patient_mass, 'mock', wearer, {}))


def joint_limits(description: RobotDescription | None = None) -> dict[str, JointLimits]:
    """name -> JointLimits in JOINT_NAMES order (default: the default description).

    The limits do not depend on the patient's height or mass.
    """
    if description is None:
        description = load_description()
    return {limits.name: limits for limits in description.joints}


def controllers_joint_order(yaml_path=None) -> list[str]:
    """The `joints` list of effort_controller in a ros2_controllers.yaml (default: the package's).

    Raises:
        DescriptionError: unreadable file or no effort_controller joints list.
    """
    import yaml

    path = pathlib.Path(yaml_path) if yaml_path is not None else controllers_yaml_path()
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DescriptionError(f'{path}: cannot read controllers file: {exc}') from exc
    try:
        joints = tree['effort_controller']['ros__parameters']['joints']
    except (KeyError, TypeError):
        raise DescriptionError(f'{path}: no effort_controller.ros__parameters.joints list') from None
    if not isinstance(joints, list) or not all(isinstance(j, str) for j in joints):
        raise DescriptionError(f'{path}: effort_controller joints must be a list of names, got {joints!r}')
    return joints


def check_controllers_match(description: RobotDescription | None, yaml_path=None) -> None:
    """Raise DescriptionError unless the controllers file names exactly the URDF's actuated joints,
    in the same order (the order of /effort_controller/commands)."""
    if description is None:
        description = load_description()
    path = yaml_path if yaml_path is not None else controllers_yaml_path()
    urdf_order = [limits.name for limits in description.joints]
    yaml_order = controllers_joint_order(path)
    if yaml_order == urdf_order:
        return
    problems = []
    missing = [name for name in urdf_order if name not in yaml_order]
    extra = [name for name in yaml_order if name not in urdf_order]
    if missing:
        problems.append(f'missing from the controllers file: {missing}')
    if extra:
        problems.append(f'not actuated joints of the URDF: {extra}')
    if not missing and not extra:
        moved = [f'position {i}: {y} (URDF has {u})'
                 for i, (u, y) in enumerate(zip(urdf_order, yaml_order)) if u != y]
        problems.append('order differs at ' + '; '.join(moved))
    elif len(yaml_order) == len(set(yaml_order)):
        common_urdf = [n for n in urdf_order if n in yaml_order]
        common_yaml = [n for n in yaml_order if n in urdf_order]
        if common_urdf != common_yaml:
            problems.append(f'order of the common joints differs: {common_yaml} vs URDF {common_urdf}')
    if len(yaml_order) != len(set(yaml_order)):
        problems.append('duplicate joint names')
    raise DescriptionError(
        f'JOINT MISMATCH between {path} (effort_controller joints) and the URDF: '
        + '; '.join(problems) + f'. URDF order: {urdf_order}; controllers file: {yaml_order}')


# --------------------------------------------------------------------------------------------
# MuJoCo
# --------------------------------------------------------------------------------------------

def _resolve_mesh_path(filename: str) -> str:
    if filename.startswith('package://'):
        package, _, rest = filename[len('package://'):].partition('/')
        if package == 'exo_gait':
            return str(share_path(rest))
        from ament_index_python.packages import get_package_share_directory
        return str(pathlib.Path(get_package_share_directory(package)) / rest)
    if filename.startswith('file://'):
        return filename[len('file://'):]
    return filename


def mujoco_spec_from_urdf(urdf_xml: str, *, floating: bool = True, imu_sites: bool = True):
    """A mujoco.MjSpec of the URDF, ready to edit and compile (`spec.compile()`).

    - ros2_control / gazebo elements are dropped; package:// and file:// mesh paths resolved.
    - fixed-joint links stay separate bodies (compiler.fusestatic = False), so the IMU frames
      and *_exo links exist as bodies named like the URDF links.
    - inertia comes only from the URDF <inertial> tags (compiler.inertiafromgeom = false):
      model mass == URDF mass, also for wearer:=false.
    - floating=True: if the root link `pelvis` has no joint (mock flavour), it gets a free joint
      named FREE_JOINT_NAME (else MuJoCo welds the root link to the world and drops its mass).
      The gazebo flavour's pelvis_guide_joint is kept as is.
    - imu_sites=True: each IMU body gets a site of the same name at its origin (for
      accelerometer / gyro / framequat sensors).
    """
    import mujoco

    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as exc:
        raise DescriptionError(f'URDF is not valid XML: {exc}') from exc
    for tag in ('ros2_control', 'gazebo'):
        for element in root.findall(tag):
            root.remove(element)
    for mesh in root.iter('mesh'):
        if mesh.get('filename'):
            mesh.set('filename', _resolve_mesh_path(mesh.get('filename')))

    spec = mujoco.MjSpec.from_string(ET.tostring(root, encoding='unicode'))
    spec.compiler.fusestatic = False
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_FALSE
    pelvis = spec.body('pelvis')
    if pelvis is None:
        raise DescriptionError('URDF has no pelvis link')
    if floating and not pelvis.joints:
        pelvis.add_freejoint(name=FREE_JOINT_NAME)
    if imu_sites:
        for frame in IMU_FRAMES:
            body = spec.body(frame)
            if body is None:
                raise DescriptionError(f'URDF lacks IMU frame {frame}')
            body.add_site(name=frame, size=[0.01, 0.01, 0.01])
    return spec
