"""Names and orders fixed by the interface contract (shared/design/ARCHITECTURE.md).

Joint limits are NOT here: they live only in the URDF (see exo_common.description).
"""

JOINT_NAMES = (
    'left_hip_joint', 'left_knee_joint', 'left_ankle_joint',
    'right_hip_joint', 'right_knee_joint', 'right_ankle_joint',
)
# The names as a JointState published in-process carries them: DDS delivers a list, and
# subscribers compare with one (never change it).
JOINT_NAME_LIST = list(JOINT_NAMES)
SHORT_JOINT_NAMES = tuple(name[:-len('_joint')] for name in JOINT_NAMES)
LEGS = ('left', 'right')
JOINTS_PER_LEG = ('hip', 'knee', 'ankle')

IMU_FRAMES = ('pelvis_imu', 'left_thigh_imu', 'right_thigh_imu', 'left_shank_imu', 'right_shank_imu')

EMG_MUSCLES = ('rectus_femoris', 'biceps_femoris', 'tibialis_anterior', 'gastrocnemius')
EMG_CHANNELS = tuple(f'{leg}_{muscle}' for leg in LEGS for muscle in EMG_MUSCLES)


def leg_slice(leg: str) -> slice:
    """Index range of one leg's three joints in JOINT_NAMES order."""
    start = LEGS.index(leg) * len(JOINTS_PER_LEG)
    return slice(start, start + len(JOINTS_PER_LEG))


def joint_index(leg: str, joint: str) -> int:
    """Index of e.g. ('left', 'knee') in JOINT_NAMES order."""
    return LEGS.index(leg) * len(JOINTS_PER_LEG) + JOINTS_PER_LEG.index(joint)
