"""Robot description: xacro expansion, contract (joints, IMU frames, ros2_control), masses,
inertias, sign conventions, argument checks."""
import math
import xml.etree.ElementTree as ET

import numpy as np
import pinocchio as pin
import pytest
import xacro

from exo_common import description as desc
from exo_common.joints import IMU_FRAMES, JOINT_NAMES

# Winter, Biomechanics and Motor Control of Human Movement, 4th ed. (2009), Table 4.1:
# segment mass as a fraction of body mass. HAT = head, arms and trunk (the pelvis link).
WINTER_MASS_FRACTION = {'hat': 0.678, 'thigh': 0.100, 'shank': 0.0465, 'foot': 0.0145}
WEARER_LINKS = {'pelvis': 'hat', 'left_thigh': 'thigh', 'right_thigh': 'thigh', 'left_shank': 'shank',
                'right_shank': 'shank', 'left_foot': 'foot', 'right_foot': 'foot'}
# Exoskeleton structure (EksoGT-class device, about 23 kg; split stated in the xacro).
EXO_MASSES = {'pelvis_exo': 11.0, 'left_thigh_exo': 3.5, 'right_thigh_exo': 3.5, 'left_shank_exo': 2.0,
              'right_shank_exo': 2.0, 'left_foot_exo': 0.5, 'right_foot_exo': 0.5}
EXO_TOTAL = 23.0

PATIENTS = [(1.75, 75.0), (1.50, 45.0), (2.00, 120.0)]


def urdf_root(urdf: str) -> ET.Element:
    return ET.fromstring(urdf)


@pytest.fixture(scope='module', params=PATIENTS, ids=lambda p: f'{p[0]}m-{p[1]}kg')
def patient(request):
    height, mass = request.param
    urdf = desc.expand_xacro(patient_height=height, patient_mass=mass)
    return height, mass, urdf


@pytest.fixture(scope='module')
def default_urdf():
    return desc.expand_xacro()


@pytest.fixture(scope='module')
def gazebo_urdf(tmp_path_factory):
    return desc.expand_xacro(hardware='gazebo')


# ---------------------------------------------------------------------------- parsing

def test_expands_and_parses(patient):
    height, mass, urdf = patient
    root = urdf_root(urdf)
    assert root.tag == 'robot' and root.get('name') == 'exo_gait'
    description = desc.parse_urdf(urdf)
    assert tuple(j.name for j in description.joints) == JOINT_NAMES
    for limits in description.joints:
        assert limits.lower < 0 < limits.upper
        assert limits.velocity > 0 and limits.effort > 0
    assert description.imu_frames == {'pelvis_imu': 'pelvis', 'left_thigh_imu': 'left_thigh',
                                      'right_thigh_imu': 'right_thigh', 'left_shank_imu': 'left_shank',
                                      'right_shank_imu': 'right_shank'}
    model = pin.buildModelFromXML(urdf)
    assert tuple(model.names[1:]) == JOINT_NAMES
    assert all(model.existFrame(frame) for frame in IMU_FRAMES)
    # Pinocchio's total mass equals the parsed total (floating base: with a fixed base the
    # pelvis' masses belong to the universe and computeTotalMass leaves them out)
    floating = pin.buildModelFromXML(urdf, pin.JointModelFreeFlyer())
    assert pin.computeTotalMass(floating) == pytest.approx(description.total_mass, rel=1e-9)
    assert model.lowerPositionLimit == pytest.approx([j.lower for j in description.joints])
    assert model.effortLimit == pytest.approx([j.effort for j in description.joints])


@pytest.mark.parametrize('kwargs', [dict(hardware='gazebo'), dict(wearer=False),
                                    dict(hardware='gazebo', wearer=False, pelvis_guide=False)])
def test_other_flavours_parse(kwargs):
    urdf = desc.expand_xacro(**kwargs)
    description = desc.parse_urdf(urdf)
    assert tuple(j.name for j in description.joints) == JOINT_NAMES
    model = pin.buildModelFromXML(urdf)
    for name in JOINT_NAMES:
        assert model.existJointName(name)


def test_root_link_is_pelvis(default_urdf):
    root = urdf_root(default_urdf)
    children = {j.find('child').get('link') for j in root.findall('joint')}
    roots = [link.get('name') for link in root.findall('link') if link.get('name') not in children]
    assert roots == ['pelvis']


def test_joint_limits_api(default_urdf):
    limits = desc.joint_limits()
    assert list(limits) == list(JOINT_NAMES)
    assert limits == desc.joint_limits(desc.parse_urdf(default_urdf))
    # limits are independent of the patient
    assert desc.joint_limits(desc.load_description(1.5, 45.0)) == limits
    assert limits['left_hip_joint'].effort >= 100 and limits['left_knee_joint'].effort >= 100
    assert 40 <= limits['left_ankle_joint'].effort <= 80
    root = urdf_root(default_urdf)
    for joint in root.findall('joint'):
        if joint.get('name') in JOINT_NAMES:
            dynamics = joint.find('dynamics')
            assert float(dynamics.get('damping')) > 0 and float(dynamics.get('friction')) > 0


def test_expansion_is_cached():
    assert desc.expand_xacro(1.75, 75) is desc.expand_xacro('1.75', 75.0)
    assert desc.load_description() is desc.load_description(1.75, 75.0, True)


@pytest.mark.parametrize('xml, match', [
    ('<robot name="x"/>', 'lacks actuated joint'),
    ('not xml', 'not valid XML'),
])
def test_parse_rejects_broken_urdf(xml, match):
    with pytest.raises(desc.DescriptionError, match=match):
        desc.parse_urdf(xml)


def test_parse_rejects_missing_limit_value_and_wrong_order(default_urdf):
    root = urdf_root(default_urdf)
    knee = next(j for j in root.findall('joint') if j.get('name') == 'left_knee_joint')
    del knee.find('limit').attrib['velocity']
    with pytest.raises(desc.DescriptionError, match="left_knee_joint.*velocity"):
        desc.parse_urdf(ET.tostring(root, encoding='unicode'))

    root = urdf_root(default_urdf)
    joints = root.findall('joint')
    hip = next(j for j in joints if j.get('name') == 'right_hip_joint')
    root.remove(hip)
    root.insert(0, hip)
    with pytest.raises(desc.DescriptionError, match='order'):
        desc.parse_urdf(ET.tostring(root, encoding='unicode'))

    root = urdf_root(default_urdf)
    ankle = next(j for j in root.findall('joint') if j.get('name') == 'right_ankle_joint')
    root.remove(ankle)
    with pytest.raises(desc.DescriptionError, match='right_ankle_joint'):
        desc.parse_urdf(ET.tostring(root, encoding='unicode'))


# ---------------------------------------------------------------------------- masses, inertias

def test_wearer_masses_follow_winter(patient):
    height, mass, urdf = patient
    description = desc.parse_urdf(urdf)
    for link, segment in WEARER_LINKS.items():
        expected = WINTER_MASS_FRACTION[segment] * mass
        assert description.link_masses[link] == pytest.approx(expected, rel=0.01), link
    wearer_total = sum(description.link_masses[link] for link in WEARER_LINKS)
    assert wearer_total == pytest.approx(mass, rel=0.01)
    assert description.total_mass == pytest.approx(mass + EXO_TOTAL, rel=0.01)


def test_exo_masses(patient):
    _, _, urdf = patient
    description = desc.parse_urdf(urdf)
    for link, expected in EXO_MASSES.items():
        assert description.link_masses[link] == pytest.approx(expected, abs=1e-9), link
    assert sum(EXO_MASSES.values()) == pytest.approx(EXO_TOTAL)


def test_exo_only_model_has_no_wearer_mass():
    description = desc.load_description(wearer=False)
    for link in WEARER_LINKS:
        assert description.link_masses[link] == 0.0
    assert description.total_mass == pytest.approx(EXO_TOTAL, abs=1e-9)
    # same kinematics as with the wearer
    with_wearer = pin.buildModelFromXML(desc.expand_xacro())
    without = pin.buildModelFromXML(description.urdf)
    for a, b in zip(with_wearer.jointPlacements, without.jointPlacements):
        assert np.allclose(a.homogeneous, b.homogeneous)


def inertia_matrices(urdf):
    for link in urdf_root(urdf).findall('link'):
        inertia = link.find('inertial/inertia')
        if inertia is None:
            continue
        v = {k: float(inertia.get(k)) for k in ('ixx', 'ixy', 'ixz', 'iyy', 'iyz', 'izz')}
        yield link.get('name'), np.array([[v['ixx'], v['ixy'], v['ixz']],
                                          [v['ixy'], v['iyy'], v['iyz']],
                                          [v['ixz'], v['iyz'], v['izz']]])


@pytest.mark.parametrize('kwargs', [dict(patient_height=h, patient_mass=m) for h, m in PATIENTS]
                         + [dict(wearer=False), dict(patient_height=1.2, patient_mass=200),
                            dict(patient_height=2.2, patient_mass=30)])
def test_inertias_are_physical(kwargs):
    urdf = desc.expand_xacro(**kwargs)
    count = 0
    for name, inertia in inertia_matrices(urdf):
        count += 1
        principal = np.linalg.eigvalsh(inertia)
        assert principal.min() > 0, name
        a, b, c = principal
        assert a + b >= c * (1 - 1e-12) and a + c >= b and b + c >= a, name
    assert count == (14 if kwargs.get('wearer', True) else 7)


# ---------------------------------------------------------------------------- sign conventions

def _frame_position(model, data, frame, point=(0.0, 0.0, 0.0)):
    placement = data.oMf[model.getFrameId(frame)]
    return placement.act(np.asarray(point, dtype=float))


@pytest.mark.parametrize('leg', ['left', 'right'])
def test_sign_conventions(default_urdf, leg):
    model = pin.buildModelFromXML(default_urdf)
    data = model.createData()
    index = {name: model.joints[model.getJointId(name)].idx_q for name in JOINT_NAMES}
    root = urdf_root(default_urdf)
    toe_box = next(link for link in root.findall('link') if link.get('name') == f'{leg}_foot')
    box_origin = [float(x) for x in toe_box.find('collision/origin').get('xyz').split()]
    box_size = [float(x) for x in toe_box.find('collision/geometry/box').get('size').split()]
    toe = (box_origin[0] + box_size[0] / 2, 0.0, box_origin[2])

    def pose(hip=0.0, knee=0.0, ankle=0.0):
        q = pin.neutral(model)
        q[index[f'{leg}_hip_joint']] = hip
        q[index[f'{leg}_knee_joint']] = knee
        q[index[f'{leg}_ankle_joint']] = ankle
        pin.framesForwardKinematics(model, data, q)
        return {
            'knee': _frame_position(model, data, f'{leg}_shank'),
            'ankle': _frame_position(model, data, f'{leg}_foot'),
            'toe': _frame_position(model, data, f'{leg}_foot', toe),
            'ankle_in_thigh': data.oMf[model.getFrameId(f'{leg}_thigh')].actInv(
                _frame_position(model, data, f'{leg}_foot')),
        }

    neutral = pose()
    # neutral: thigh and shank hang straight down (z up), foot points forward (x)
    assert neutral['knee'][0] == pytest.approx(0, abs=1e-12) and neutral['knee'][2] < 0
    assert neutral['toe'][0] > neutral['ankle'][0]
    assert (neutral['knee'][1] > 0) == (leg == 'left')
    # hip flexion (+) swings the knee forward
    assert pose(hip=0.3)['knee'][0] > 0.05
    assert pose(hip=-0.2)['knee'][0] < -0.05
    # knee flexion (+) moves the ankle backward relative to the thigh
    assert pose(knee=0.5)['ankle_in_thigh'][0] < -0.05
    assert pose(hip=0.5, knee=0.5)['ankle_in_thigh'][0] < -0.05
    # ankle dorsiflexion (+) raises the toe; plantarflexion (-) lowers it
    assert pose(ankle=0.2)['toe'][2] > neutral['toe'][2] + 0.01
    assert pose(ankle=-0.2)['toe'][2] < neutral['toe'][2] - 0.01


def test_feet_on_the_floor_in_neutral(patient):
    height, _, urdf = patient
    model = pin.buildModelFromXML(urdf)
    data = model.createData()
    pin.framesForwardKinematics(model, data, pin.neutral(model))
    root = urdf_root(urdf)
    foot = next(link for link in root.findall('link') if link.get('name') == 'left_foot')
    origin_z = float(foot.find('collision/origin').get('xyz').split()[2])
    size_z = float(foot.find('collision/geometry/box').get('size').split()[2])
    sole = _frame_position(model, data, 'left_foot', (0, 0, origin_z - size_z / 2))
    # pelvis origin at hip height 0.530 H (Drillis & Contini, Winter Fig. 4.1) above the sole
    assert -sole[2] == pytest.approx(0.530 * height, rel=1e-6)


# ---------------------------------------------------------------------------- ros2_control

def test_ros2_control_interfaces_match_limits(default_urdf, gazebo_urdf):
    for urdf, plugin in ((default_urdf, 'mock_components/GenericSystem'),
                         (gazebo_urdf, 'gz_ros2_control/GazeboSimSystem')):
        root = urdf_root(urdf)
        control = root.findall('ros2_control')
        assert len(control) == 1
        control = control[0]
        assert control.get('name') == 'ExoGaitSystem' and control.get('type') == 'system'
        assert control.find('hardware/plugin').text.strip() == plugin
        limits = desc.joint_limits(desc.parse_urdf(urdf))
        joints = control.findall('joint')
        assert [j.get('name') for j in joints] == list(JOINT_NAMES)
        for joint in joints:
            commands = joint.findall('command_interface')
            assert [c.get('name') for c in commands] == ['effort']
            params = {p.get('name'): float(p.text) for p in commands[0].findall('param')}
            effort = limits[joint.get('name')].effort
            assert params == {'min': -effort, 'max': effort}
            states = [s.get('name') for s in joint.findall('state_interface')]
            assert states == ['position', 'velocity', 'effort']


def test_gazebo_flavour(gazebo_urdf, default_urdf):
    root = urdf_root(gazebo_urdf)
    plugins = [p for g in root.findall('gazebo') for p in g.findall('plugin')]
    assert len(plugins) == 1
    assert plugins[0].get('filename') == 'gz_ros2_control-system'
    assert plugins[0].get('name') == 'gz_ros2_control::GazeboSimROS2ControlPlugin'
    assert plugins[0].find('parameters').text.strip() == str(desc.controllers_yaml_path())
    sensors = {g.get('reference'): g.find('sensor')
               for g in root.findall('gazebo') if g.find('sensor') is not None}
    assert sorted(sensors) == sorted(IMU_FRAMES)
    for frame, sensor in sensors.items():
        assert sensor.get('type') == 'imu'
        assert sensor.find('topic').text.strip() == f'hw/imu/{frame}'
        assert float(sensor.find('update_rate').text) == 200
    guide = [j for j in root.findall('joint') if j.get('name') == 'pelvis_guide_joint']
    assert len(guide) == 1 and guide[0].get('type') == 'prismatic'
    # mock flavour: nothing of gazebo
    mock = urdf_root(default_urdf)
    assert not mock.findall('gazebo')
    assert 'world' not in {link.get('name') for link in mock.findall('link')}
    # explicit controllers file
    custom = desc.expand_xacro(hardware='gazebo', controllers_file='/opt/x/ctrl.yaml')
    assert '<parameters>/opt/x/ctrl.yaml</parameters>' in custom


def test_controllers_yaml_matches_urdf():
    description = desc.load_description()
    assert desc.controllers_joint_order() == [j.name for j in description.joints] == list(JOINT_NAMES)
    desc.check_controllers_match(description, desc.controllers_yaml_path())
    text = desc.controllers_yaml_path().read_text()
    assert 'update_rate: 1000' in text
    assert 'forward_command_controller/ForwardCommandController' in text
    assert 'joint_state_broadcaster/JointStateBroadcaster' in text


def _write_controllers(path, joints):
    lines = ['effort_controller:', '  ros__parameters:', '    interface_name: effort', '    joints:']
    lines += [f'      - {name}' for name in joints]
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_mismatched_controllers_yaml_is_loud(tmp_path):
    description = desc.load_description()
    swapped = list(JOINT_NAMES)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(desc.DescriptionError) as err:
        desc.check_controllers_match(description, _write_controllers(tmp_path / 'swapped.yaml', swapped))
    assert 'left_knee_joint' in str(err.value) and 'left_ankle_joint' in str(err.value)
    assert 'order' in str(err.value)

    missing = [name for name in JOINT_NAMES if name != 'right_ankle_joint']
    with pytest.raises(desc.DescriptionError, match=r"missing.*right_ankle_joint"):
        desc.check_controllers_match(description, _write_controllers(tmp_path / 'missing.yaml', missing))

    both = list(swapped)
    both.remove('right_ankle_joint')
    with pytest.raises(desc.DescriptionError, match='right_ankle_joint') as err:
        desc.check_controllers_match(description, _write_controllers(tmp_path / 'both.yaml', both))
    assert 'left_knee_joint' in str(err.value)

    empty = tmp_path / 'empty.yaml'
    empty.write_text('effort_controller: {}\n')
    with pytest.raises(desc.DescriptionError, match='joints'):
        desc.controllers_joint_order(empty)


# ---------------------------------------------------------------------------- argument checks

@pytest.mark.parametrize('kwargs, name, allowed', [
    (dict(patient_height=0), 'patient_height', '[1.2, 2.2]'),
    (dict(patient_height='abc'), 'patient_height', '[1.2, 2.2]'),
    (dict(patient_height=2.5), 'patient_height', '[1.2, 2.2]'),
    (dict(patient_height=math.nan), 'patient_height', '[1.2, 2.2]'),
    (dict(patient_mass=-5), 'patient_mass', '[30, 200]'),
    (dict(patient_mass='abc'), 'patient_mass', '[30, 200]'),
    (dict(patient_mass=True), 'patient_mass', '[30, 200]'),
    (dict(hardware='real'), 'hardware', 'mock, gazebo'),
    (dict(wearer='maybe'), 'wearer', 'true or false'),
    (dict(no_such_arg=1), 'no_such_arg', 'known'),
])
def test_invalid_arguments(kwargs, name, allowed):
    with pytest.raises(desc.DescriptionError) as err:
        desc.expand_xacro(**kwargs)
    assert name in str(err.value) and allowed in str(err.value)
    assert isinstance(err.value, ValueError)
    if set(kwargs) <= {'patient_height', 'patient_mass'}:
        with pytest.raises(desc.DescriptionError, match=name):
            desc.load_description(**kwargs)


@pytest.mark.parametrize('mappings, name, allowed', [
    ({'patient_height': '0'}, 'patient_height', '[1.2, 2.2]'),
    ({'patient_mass': '-5'}, 'patient_mass', '[30, 200]'),
    ({'patient_height': 'abc'}, 'patient_height', '[1.2, 2.2]'),
    ({'hardware': 'real'}, 'hardware', 'mock, gazebo'),
])
def test_xacro_itself_checks_arguments(mappings, name, allowed):
    """The same checks hold for `xacro exo_gait.urdf.xacro ...` outside Python."""
    with pytest.raises(xacro.XacroException) as err:
        xacro.process_file(str(desc.xacro_path()), mappings=mappings)
    assert name in str(err.value) and allowed in str(err.value)


def test_numeric_strings_accepted():
    assert desc.expand_xacro('1.8', '80') == desc.expand_xacro(1.8, 80)
    assert desc.expand_xacro(wearer='false') == desc.expand_xacro(wearer=False)
