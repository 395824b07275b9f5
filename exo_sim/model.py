"""The MuJoCo model of the exoskeleton with its wearer on a treadmill, built from the URDF.

Everything about the robot (links, joints, limits, masses, damping, IMU frames) comes from the
expanded xacro via exo_common.description; this module only adds what a URDF cannot say:

- a treadmill belt: a long box on a horizontal slide joint, driven at belt speed (the belt is
  uniform and MuJoCo's soft contacts keep no state, so the belt is moved back by a whole
  wrap length whenever it has travelled that far, with no physical effect);
- Lokomat-style pelvis guidance: the pelvis keeps x, y and all rotations, only a vertical slide
  is free (Colombo et al. 2000, J Rehabil Res Dev 37:693-700: the pelvis is guided by a
  parallelogram that allows vertical motion);
- six torque actuators saturated at the URDF effort limits, with first-order torque dynamics;
- IMU sensors (accelerometer, gyro) at the IMU sites, sole touch sensors for foot contact;
- contact parameters: only the feet touch the belt (sagittal model: the legs may pass each
  other), shoe-on-belt friction.
"""
from dataclasses import dataclass
import math

import mujoco
import numpy as np

from exo_common.description import RobotDescription, mujoco_spec_from_urdf
from exo_common.joints import IMU_FRAMES, JOINT_NAMES, LEGS

PELVIS_SLIDE = 'pelvis_vertical_slide'
BELT_SLIDE = 'treadmill_belt_slide'
BELT_LENGTH_M = 6.0
BELT_WIDTH_M = 1.0
BELT_THICKNESS_M = 0.05
BELT_WRAP_M = 1.0  # the belt is moved back by this much after travelling it
BELT_MASS_KG = 1.0e4  # heavy enough that foot contact barely changes its speed within a step
# Vertical pelvis travel allowed by the guidance (m, relative to upright standing): the harness
# and the Lokomat's parallelogram stop the pelvis long before the knees reach the belt.
PELVIS_TRAVEL_M = (-0.30, 0.10)
# Rubber shoe sole on a treadmill belt: sliding friction about 0.6-0.9 (Chang et al. 2001,
# Ergonomics 44:1217-1232, review of shoe-floor friction measurements); 0.8 used.
FOOT_FRICTION = 0.8
# Touch-sensor contact detection (N): sole force above ON starts a contact, below OFF ends it.
CONTACT_ON_N = 30.0
CONTACT_OFF_N = 10.0
# The URDF joint limits are the exoskeleton's mechanical end stops. MuJoCo's default soft limit
# (0.02 s time constant) lets a loaded ankle sink 5-10 deg past its stop; a metal stop with a
# rubber bumper gives a few tenths of a degree. Time constant >= 2 physics steps for stability.
END_STOP_TIME_CONSTANT_S = 0.004
END_STOP_IMPEDANCE = (0.95, 0.99, 0.001)

_ROBOT_GROUP = 2   # contype bit of robot geoms
_WORLD_GROUP = 1   # contype/conaffinity bit of the belt


@dataclass(frozen=True)
class ModelIndex:
    """Addresses into mjData for the quantities the simulation reads every step."""
    joint_qpos: np.ndarray       # (6,) qpos addresses of JOINT_NAMES
    joint_dof: np.ndarray        # (6,) dof addresses of JOINT_NAMES
    pelvis_qpos: int
    pelvis_dof: int
    belt_qpos: int
    belt_dof: int
    accel: np.ndarray            # (5, 3) sensordata addresses, IMU_FRAMES order
    gyro: np.ndarray             # (5, 3)
    touch: np.ndarray            # (2,) sensordata address of the left / right sole force
    imu_body: np.ndarray         # (5,) body ids carrying the IMU sites
    standing_pelvis_height: float  # m above the belt surface, legs straight


def build_model(description: RobotDescription, timestep: float = 0.001,
                torque_time_constant_s: float = 0.008) -> tuple[mujoco.MjModel, ModelIndex]:
    """Compile the simulation model.

    Args:
        description: from exo_common.description.load_description().
        timestep: physics step (s).
        torque_time_constant_s: first-order lag of the actuator torque (s).

    Raises:
        ValueError: the description lacks something the simulation needs (joint, IMU, foot).
    """
    spec = mujoco_spec_from_urdf(description.urdf, floating=False, imu_sites=True)
    spec.option.timestep = timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.gravity = [0.0, 0.0, -9.81]

    pelvis = spec.body('pelvis')
    pelvis.add_joint(name=PELVIS_SLIDE, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 0, 1],
                     range=list(PELVIS_TRAVEL_M))
    spec.joint(PELVIS_SLIDE).limited = mujoco.mjtLimited.mjLIMITED_TRUE

    for geom in spec.geoms:
        geom.contype = _ROBOT_GROUP
        geom.conaffinity = 0
    sole_sites = []
    for leg in LEGS:
        foot_geom = spec.geom(f'{leg}_foot_collision')
        if foot_geom is None:
            raise ValueError(f'URDF has no {leg}_foot_collision geometry for foot contact')
        foot_geom.conaffinity = _WORLD_GROUP
        foot_geom.friction = [FOOT_FRICTION, 0.005, 0.0001]
        foot_geom.condim = 3
        # Touch site: the sole box, slightly enlarged, so every belt contact falls inside.
        site = foot_geom.parent.add_site(
            name=f'{leg}_sole', type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[foot_geom.size[0] + 0.01, foot_geom.size[1] + 0.01, foot_geom.size[2] + 0.01],
            pos=list(foot_geom.pos), quat=list(foot_geom.quat))
        sole_sites.append(site.name)

    belt_size = np.array([BELT_LENGTH_M, BELT_WIDTH_M, BELT_THICKNESS_M])
    # The URDF import takes inertia from <inertial> tags only, so the belt gets its own.
    belt = spec.worldbody.add_body(
        name='treadmill_belt', pos=[0, 0, -BELT_THICKNESS_M / 2], mass=BELT_MASS_KG,
        inertia=list(BELT_MASS_KG / 12.0 * ((belt_size ** 2).sum() - belt_size ** 2)),
        explicitinertial=True)
    belt.add_joint(name=BELT_SLIDE, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0])
    belt.add_geom(name='treadmill_belt', type=mujoco.mjtGeom.mjGEOM_BOX,
                  size=[BELT_LENGTH_M / 2, BELT_WIDTH_M / 2, BELT_THICKNESS_M / 2],
                  contype=_WORLD_GROUP, conaffinity=_WORLD_GROUP,
                  friction=[FOOT_FRICTION, 0.005, 0.0001], rgba=[0.15, 0.15, 0.15, 1])

    for limits in description.joints:
        joint = spec.joint(limits.name)
        joint.solref_limit = [max(END_STOP_TIME_CONSTANT_S, 2.0 * timestep), 1.0]
        joint.solimp_limit = list(END_STOP_IMPEDANCE) + [0.5, 2.0]
        actuator = spec.add_actuator(name=limits.name, target=limits.name,
                                     trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.dyntype = mujoco.mjtDyn.mjDYN_FILTEREXACT
        actuator.dynprm[0] = torque_time_constant_s
        actuator.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        actuator.gainprm[0] = 1.0
        actuator.biastype = mujoco.mjtBias.mjBIAS_NONE
        actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.ctrlrange = [-limits.effort, limits.effort]
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.forcerange = [-limits.effort, limits.effort]

    for frame in IMU_FRAMES:
        spec.add_sensor(name=f'{frame}_accel', type=mujoco.mjtSensor.mjSENS_ACCELEROMETER,
                        objtype=mujoco.mjtObj.mjOBJ_SITE, objname=frame)
        spec.add_sensor(name=f'{frame}_gyro', type=mujoco.mjtSensor.mjSENS_GYRO,
                        objtype=mujoco.mjtObj.mjOBJ_SITE, objname=frame)
    for leg, site in zip(LEGS, sole_sites):
        spec.add_sensor(name=f'{leg}_sole_touch', type=mujoco.mjtSensor.mjSENS_TOUCH,
                        objtype=mujoco.mjtObj.mjOBJ_SITE, objname=site)

    model = spec.compile()
    standing = _standing_pelvis_height(model)
    # Put the pelvis so that, legs straight, the soles rest on the belt surface (z = 0).
    model.body_pos[model.body('pelvis').id][2] = standing
    return model, _index(model, standing)


def _standing_pelvis_height(model: mujoco.MjModel) -> float:
    """Hip-joint-centre height above the sole lowest point with all joints at zero."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    pelvis_z = data.xpos[model.body('pelvis').id][2]
    lowest = math.inf
    for leg in LEGS:
        geom = model.geom(f'{leg}_foot_collision')
        corners = box_corners(data.geom_xpos[geom.id], data.geom_xmat[geom.id].reshape(3, 3),
                               model.geom_size[geom.id])
        lowest = min(lowest, corners[:, 2].min())
    return float(pelvis_z - lowest)


def box_corners(centre, rotation, half_size) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    return centre + (signs * half_size) @ rotation.T


def _sensor_slice(model, name: str) -> np.ndarray:
    sensor = model.sensor(name)
    return np.arange(sensor.adr[0], sensor.adr[0] + sensor.dim[0])


def _index(model: mujoco.MjModel, standing_height: float) -> ModelIndex:
    def joint(name):
        return model.joint(name)

    return ModelIndex(
        joint_qpos=np.array([joint(n).qposadr[0] for n in JOINT_NAMES]),
        joint_dof=np.array([joint(n).dofadr[0] for n in JOINT_NAMES]),
        pelvis_qpos=int(joint(PELVIS_SLIDE).qposadr[0]),
        pelvis_dof=int(joint(PELVIS_SLIDE).dofadr[0]),
        belt_qpos=int(joint(BELT_SLIDE).qposadr[0]),
        belt_dof=int(joint(BELT_SLIDE).dofadr[0]),
        accel=np.array([_sensor_slice(model, f'{f}_accel') for f in IMU_FRAMES]),
        gyro=np.array([_sensor_slice(model, f'{f}_gyro') for f in IMU_FRAMES]),
        touch=np.array([_sensor_slice(model, f'{leg}_sole_touch')[0] for leg in LEGS]),
        imu_body=np.array([model.site(f).bodyid[0] for f in IMU_FRAMES]),
        standing_pelvis_height=standing_height,
    )


def time_constant_from_bandwidth(bandwidth_hz: float) -> float:
    """First-order lag whose -3 dB frequency is bandwidth_hz."""
    return 1.0 / (2.0 * math.pi * bandwidth_hz)


def set_torque_bandwidth(model: mujoco.MjModel, bandwidth_hz: float) -> None:
    """Change the actuators' first-order torque bandwidth live."""
    model.actuator_dynprm[:, 0] = time_constant_from_bandwidth(bandwidth_hz)
