"""The expanded URDF compiles in MuJoCo (no hand-written copy of the robot) and keeps the
URDF's joints, limits, masses and IMU frames."""
import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from exo_common import description as desc  # noqa: E402
from exo_common.joints import IMU_FRAMES, JOINT_NAMES  # noqa: E402


def compile_model(**kwargs):
    urdf = desc.expand_xacro(**kwargs)
    spec = desc.mujoco_spec_from_urdf(urdf)
    return desc.parse_urdf(urdf), spec.compile()


@pytest.fixture(scope='module')
def default_model():
    return compile_model()


def joint_names(model):
    return [model.joint(i).name for i in range(model.njnt)]


def test_joints_and_ranges(default_model):
    description, model = default_model
    assert joint_names(model) == [desc.FREE_JOINT_NAME, *JOINT_NAMES]
    assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    assert model.body(int(model.jnt_bodyid[0])).name == 'pelvis'
    limits = desc.joint_limits(description)
    for name in JOINT_NAMES:
        joint = model.joint(name)
        assert joint.type[0] == mujoco.mjtJoint.mjJNT_HINGE
        assert joint.limited[0]
        assert joint.range == pytest.approx([limits[name].lower, limits[name].upper])
        assert model.jnt_actfrcrange[joint.id] == pytest.approx([-limits[name].effort, limits[name].effort])
    assert model.nq == 7 + 6 and model.nv == 6 + 6


@pytest.mark.parametrize('kwargs', [{}, dict(wearer=False), dict(patient_height=2.0, patient_mass=120),
                                    dict(patient_height=1.5, patient_mass=45)])
def test_total_mass_matches_urdf(kwargs):
    description, model = compile_model(**kwargs)
    assert model.body_mass.sum() == pytest.approx(description.total_mass, rel=1e-6)
    assert model.body('pelvis').mass[0] == pytest.approx(description.link_masses['pelvis'], rel=1e-6)


def test_imu_frames_exist(default_model):
    description, model = default_model
    for frame in IMU_FRAMES:
        body = model.body(frame)
        site = model.site(frame)
        assert site.bodyid[0] == body.id
        assert model.body(int(body.parentid[0])).name == description.imu_frames[frame]
        assert body.mass[0] == 0.0
    for link in ('pelvis_exo', 'left_thigh_exo', 'right_foot_exo'):
        assert model.body(link).mass[0] > 0


def test_foot_contact_geometry(default_model):
    _, model = default_model
    for leg in ('left', 'right'):
        geom = model.geom(f'{leg}_foot_collision')
        assert geom.type[0] == mujoco.mjtGeom.mjGEOM_BOX
        assert model.body(int(geom.bodyid[0])).name == f'{leg}_foot'


def test_gazebo_flavour_keeps_pelvis_guide():
    _, model = compile_model(hardware='gazebo')
    assert joint_names(model) == ['pelvis_guide_joint', *JOINT_NAMES]
    assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_SLIDE


def test_sign_conventions_in_mujoco(default_model):
    _, model = default_model
    data = mujoco.MjData(model)

    def positions(**angles):
        data.qpos[:] = model.qpos0
        for name, value in angles.items():
            data.qpos[model.joint(name).qposadr[0]] = value
        mujoco.mj_kinematics(model, data)
        return {name: data.xpos[model.body(name).id].copy()
                for name in ('left_thigh', 'left_shank', 'left_foot')} | {
            'toe': data.xpos[model.body('left_foot').id] + data.xmat[model.body('left_foot').id].reshape(3, 3)
            @ np.array([0.1, 0.0, 0.0])}

    neutral = positions()
    assert positions(left_hip_joint=0.3)['left_shank'][0] > neutral['left_shank'][0] + 0.05
    assert positions(left_knee_joint=0.5)['left_foot'][0] < neutral['left_foot'][0] - 0.05
    assert positions(left_ankle_joint=0.2)['toe'][2] > neutral['toe'][2] + 0.01


def test_steps_without_blowing_up(default_model):
    """0.2 s of free fall (the model has no floor) stays finite."""
    _, model = default_model
    data = mujoco.MjData(model)
    data.qpos[2] = 1.2  # pelvis above the (absent) floor
    mujoco.mj_step(model, data, nstep=200)
    assert np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
