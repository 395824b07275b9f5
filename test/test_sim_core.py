"""ExoSimulation (plain core): physics, patient, devices. No ROS."""
import math

import numpy as np
import pytest
from scipy import signal

from exo_common import normative
from exo_common.description import joint_limits
from exo_common.joints import EMG_CHANNELS, IMU_FRAMES, JOINT_NAMES
from exo_common.params import ConfigError
from exo_sim.patient import PROFILE_NAMES, load_profile
from exo_sim.simulation import ExoSimulation


def walk(patient, seconds, command=None, **kwargs):
    """Run a simulation, returning it and the exact joint angles sampled every 10 ms."""
    sim = ExoSimulation(patient, **kwargs)
    angles = []
    for step in range(int(seconds / sim.dt)):
        sim.step(command(sim) if callable(command) else (command or [0.0] * 6))
        if step % 10 == 0:
            angles.append(sim.truth().joint_position)
    return sim, np.array(angles)


def test_every_profile_loads_with_all_fields():
    for name in PROFILE_NAMES:
        profile = load_profile(name)
        assert len(profile.strength) == 2 * 6
    assert load_profile('complete_sci').strength[('left', 'knee', 'extension')] == 0.0
    foot_drop = load_profile('stroke_left_hemiparesis')
    assert foot_drop.strength[('left', 'ankle', 'dorsiflexion')] < foot_drop.strength[('right', 'ankle', 'dorsiflexion')]


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError, match='known profiles'):
        ExoSimulation('no_such_patient')


def test_full_support_zero_torque_legs_hang_and_nothing_explodes():
    sim, angles = walk('complete_sci', 4.0, speed_kmh=0.5, bws_percent=100.0)
    truth = sim.truth()
    limits = joint_limits()
    assert np.isfinite(angles).all()
    for j, name in enumerate(JOINT_NAMES):
        assert limits[name].lower - 0.05 <= angles[:, j].min()
        assert angles[:, j].max() <= limits[name].upper + 0.05
    # Legs hang: hips near upright, nothing moving any more, pelvis held near standing height.
    assert np.abs(truth.joint_position[[0, 3]]).max() < math.radians(15)
    last_second = np.diff(angles[-100:], axis=0) / 0.01
    assert np.abs(last_second).max() < 2.0    # feet graze the slow belt now and then
    assert np.abs(last_second).mean() < 0.3
    assert abs(truth.pelvis_height - sim.index.standing_pelvis_height) < 0.05


def test_healthy_patient_walks_by_own_effort_and_complete_sci_does_not():
    healthy, angles = walk('healthy', 12.0, speed_kmh=2.0, bws_percent=30.0)
    stride = 1.0 / healthy.patient.cycle_rate
    for leg, strikes in healthy.truth().heel_strikes.items():
        strikes = np.array(strikes)
        strikes = strikes[strikes > 2.0]
        assert len(strikes) >= 5, leg
        assert np.allclose(np.diff(strikes), stride, rtol=0.15), (leg, np.diff(strikes), stride)
    steady = np.degrees(angles[200:])
    rom = steady.max(axis=0) - steady.min(axis=0)
    assert (rom[[0, 3]] > 25).all(), rom      # hip: healthy slow walking about 35-40 deg
    assert (rom[[1, 4]] > 45).all(), rom      # knee: about 55-65 deg

    sci, sci_angles = walk('complete_sci', 12.0, speed_kmh=2.0, bws_percent=30.0)
    assert all(len(s) <= 1 for s in sci.truth().heel_strikes.values())
    sci_rom = np.degrees(sci_angles[200:].max(axis=0) - sci_angles[200:].min(axis=0))
    assert (sci_rom[[0, 1, 3, 4]] < 5).all(), sci_rom   # hips and knees still (ankles flop)


def test_encoder_reading_moves_in_steps_of_exactly_its_resolution():
    sim = ExoSimulation('healthy', encoder_bits=14)
    resolution = 2 * math.pi / 2 ** 14
    readings = []
    for _ in range(500):
        sim.step([0.0] * 6)
        readings.append(sim.encoders().position)
    counts = np.array(readings) / resolution
    assert np.allclose(counts, np.round(counts), atol=1e-6)
    steps = np.abs(np.diff(np.round(counts), axis=0))
    assert steps.max() >= 1 and set(np.unique(steps)) >= {0.0, 1.0}
    exact = np.array([sim.truth().joint_position])
    assert np.abs(readings[-1] - exact).max() <= resolution / 2 + 1e-12


def test_imu_at_rest_reads_gravity_in_its_own_frame():
    sim = ExoSimulation('complete_sci', speed_kmh=0.0, bws_percent=100.0, seed=3)
    sim.run(3.0)   # settle
    sim.imus()
    samples = []
    for _ in range(1000):
        sim.step([0.0] * 6)
        samples.extend(sim.imus())
    assert len(samples) == round(sim.options.imu_rate_hz) * len(IMU_FRAMES)   # 1 s of samples each
    spec = sim.options.imu
    for index, frame in enumerate(IMU_FRAMES):
        accel = np.array([s.accel for s in samples if s.frame == frame])
        gyro = np.array([s.gyro for s in samples if s.frame == frame])
        rotation = sim.data.site_xmat[sim.model.site(frame).id].reshape(3, 3)
        expected = rotation.T @ np.array([0.0, 0.0, 9.81])
        # Error = turn-on offset (1 sd = spec) + averaged white noise: 4 sd bounds.
        assert np.abs(accel.mean(axis=0) - expected).max() < 4 * spec.accel_offset + 0.01, frame
        assert np.abs(gyro.mean(axis=0)).max() < 4 * spec.gyro_offset, frame
    pelvis = np.array([s.accel for s in samples if s.frame == 'pelvis_imu']).mean(axis=0)
    assert pelvis[2] == pytest.approx(9.81, abs=0.5)   # z up in the pelvis frame


def test_gyro_matches_segment_angular_velocity():
    sim = ExoSimulation('healthy', seed=4)
    sim.run(2.0)
    sim.imus()
    measured, expected = [], []
    for _ in range(3000):
        sim.step([0.0] * 6)
        samples = sim.imus()
        if samples:
            velocity = sim.truth().joint_velocity
            thigh = {s.frame: s.gyro for s in samples}
            # Pelvis does not rotate; hip axis is -y, knee +y: thigh turns at -hip rate about y,
            # shank at -(hip - knee).
            measured.append([thigh['left_thigh_imu'][1], thigh['left_shank_imu'][1]])
            expected.append([-velocity[0], -(velocity[0] - velocity[1])])
    measured, expected = np.array(measured), np.array(expected)
    assert expected.std(axis=0).min() > 0.5   # the legs really swing
    error = measured - expected
    assert np.abs(error.mean(axis=0)).max() < 4 * sim.options.imu.gyro_offset
    assert (error - error.mean(axis=0)).std(axis=0).max() < 0.05   # within a few noise sd


def _emg(sim, seconds, command=None):
    batches = []
    for _ in range(int(seconds / sim.dt)):
        sim.step(command(sim) if command else [0.0] * 6)
        batch = sim.emg()
        if batch is not None:
            batches.append(batch)
    return batches


def test_raw_emg_in_20_450_hz_band_with_hum_line():
    sim = ExoSimulation('healthy', seed=5)
    batches = _emg(sim, 6.0)
    assert batches[0].channels == EMG_CHANNELS and batches[0].fs == 2000.0
    stamps = np.array([b.stamp for b in batches])
    assert np.allclose(np.diff(stamps), 20 / 2000.0)
    raw = np.concatenate([b.samples for b in batches])
    frequency, power = signal.welch(raw, fs=2000.0, nperseg=1024, axis=0)
    in_band = (frequency >= 20) & (frequency <= 450)
    assert (power[in_band].sum(axis=0) / power.sum(axis=0)).min() > 0.85

    quiet = ExoSimulation('complete_sci', seed=5)     # no activity: noise, hum, artefact
    raw = np.concatenate([b.samples for b in _emg(quiet, 4.0)])
    frequency, power = signal.welch(raw, fs=2000.0, nperseg=2000, axis=0)
    hum = np.argmin(np.abs(frequency - 50.0))
    neighbours = np.r_[power[hum - 20:hum - 3], power[hum + 4:hum + 20]]
    assert (power[hum] > 20 * np.median(neighbours, axis=0)).all()


def test_emg_envelope_rises_with_patient_effort():
    def rms(batches):
        raw = np.concatenate([b.samples for b in batches[100:]])
        return np.sqrt(np.mean(raw ** 2, axis=0))

    free = rms(_emg(ExoSimulation('healthy', seed=6), 6.0))
    # The exo pulls both hips into flexion: the patient fights it with its hip extensors.
    loaded = rms(_emg(ExoSimulation('healthy', seed=6), 6.0, command=lambda sim: [25.0, 0, 0, 25.0, 0, 0]))
    extensors = [EMG_CHANNELS.index(c) for c in ('left_biceps_femoris', 'right_biceps_femoris')]
    assert (loaded[extensors] > 1.2 * free[extensors]).all(), (free, loaded)
    none = rms(_emg(ExoSimulation('complete_sci', seed=6), 6.0))
    assert (none < 0.35 * free).all()  # the floor: hum, sensor noise and movement artefact


def test_same_seed_same_data_other_seed_other_data():
    def record(seed):
        sim = ExoSimulation('stroke_left_hemiparesis', seed=seed)
        out = []
        for step in range(300):
            sim.step([math.sin(step * 0.01)] * 6)
            out.append(sim.encoders().effort)
            out.extend(s.accel for s in sim.imus())
            batch = sim.emg()
            if batch is not None:
                out.append(batch.samples.ravel())
        return np.concatenate(out)

    assert np.array_equal(record(7), record(7))
    assert not np.array_equal(record(7), record(8))


@pytest.mark.parametrize('command', [[float('nan')] + [0.0] * 5, [1.0] * 5, [1.0] * 7, None, 'abcdef',
                                     [float('inf')] * 6])
def test_bad_command_gives_zero_torque_and_a_problem(command):
    sim = ExoSimulation('complete_sci')
    for _ in range(50):
        sim.step([20.0] * 6)
    assert np.abs(sim.truth().actuator_torque).min() > 10.0
    for _ in range(100):
        sim.step(command)
    assert np.abs(sim.truth().actuator_torque).max() < 0.1
    assert 'command' in dict(sim.problems.items())
    sim.step([0.0] * 6)
    assert 'command' not in dict(sim.problems.items())


def test_torque_saturates_at_urdf_effort_limit():
    sim = ExoSimulation('complete_sci')
    for _ in range(200):
        sim.step([1e6] * 6)
    efforts = [joint_limits()[name].effort for name in JOINT_NAMES]
    assert np.allclose(sim.truth().actuator_torque, efforts, rtol=1e-3)


def test_speed_and_support_change_smoothly():
    sim = ExoSimulation('healthy', speed_kmh=1.0, bws_percent=30.0)
    sim.set_speed_kmh(3.0)
    sim.set_bws_percent(60.0)
    sim.run(0.5)
    truth = sim.truth()
    assert 1.0 / 3.6 < truth.belt_speed < 3.0 / 3.6
    assert 30.0 < truth.bws_percent < 60.0
    sim.run(5.0)
    assert sim.truth().belt_speed == pytest.approx(3.0 / 3.6)
    assert sim.truth().bws_percent == pytest.approx(60.0)


def _swing_clearance(model, index, curves, phases):
    """Lowest point of the left (swing) foot above the right (stance) foot, m, per left phase."""
    import mujoco
    from exo_sim.model import box_corners
    data = mujoco.MjData(model)
    feet = [model.geom(f'{leg}_foot_collision').id for leg in ('left', 'right')]
    clearance = []
    for phase in phases:
        left = normative.sample(curves, phase)
        right = normative.sample(curves, phase + 0.5)
        data.qpos[index.joint_qpos] = np.concatenate((left, right))
        mujoco.mj_kinematics(model, data)
        lowest = [box_corners(data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g])[:, 2].min()
                  for g in feet]
        clearance.append(lowest[0] - lowest[1])
    return np.array(clearance)


def test_device_pattern_clears_the_belt_with_the_smallest_documented_adjustment():
    from exo_common.description import load_description
    from exo_sim.model import build_model
    model, index = build_model(load_description())
    swing = np.linspace(0.65, 0.93, 57)   # after toe-off to the descent to heel strike
    speed = 2.0 / 3.6
    grid = normative.phase_grid()
    adjusted, _ = normative.device_curves(speed)
    bare, _ = normative.device_curves(speed, clearance=normative.NO_CLEARANCE)
    smaller, _ = normative.device_curves(speed, clearance=normative.DEVICE_CLEARANCE.scaled(0.75))
    assert adjusted.shape == bare.shape == (3, len(grid))
    assert _swing_clearance(model, index, bare, swing).min() < -0.01         # upright pelvis: toe in the belt
    assert _swing_clearance(model, index, adjusted, swing).min() >= normative.MIN_TOE_CLEARANCE_M
    assert _swing_clearance(model, index, smaller, swing).min() < normative.MIN_TOE_CLEARANCE_M
    # Hip relative to the vertical: the measured pelvic tilt (about 12 deg at slow speeds) removed.
    tilt, _ = normative.pelvic_tilt(speed)
    raw, _ = normative.joint_curves(speed)
    np.testing.assert_allclose(bare[0], raw[0] - tilt)
    assert 8.0 < np.degrees(tilt).mean() < 16.0


def test_device_pattern_lands_the_leading_heel_at_phase_zero():
    import mujoco
    from exo_common.description import load_description
    from exo_sim.model import box_corners, build_model
    model, index = build_model(load_description())
    data = mujoco.MjData(model)
    feet = [model.geom(f'{leg}_foot_collision').id for leg in ('left', 'right')]
    speed = 2.0 / 3.6

    def gap(alignment, phase):
        """Lowest point of the leading (left) foot above the trailing (right) one, m."""
        curves, _ = normative.device_curves(speed, phase=np.array([phase, phase + 0.5]), alignment=alignment)
        data.qpos[index.joint_qpos] = np.concatenate((curves[:, 0], curves[:, 1]))
        mujoco.mj_kinematics(model, data)
        lowest = [box_corners(data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3), model.geom_size[g])[:, 2].min()
                  for g in feet]
        return lowest[0] - lowest[1]

    assert gap(normative.NO_ALIGNMENT, 0.0) > 0.01    # upright pelvis: the heel hangs above
    double_support = np.linspace(0.0, 0.1, 11)
    assert max(abs(gap(normative.DEVICE_ALIGNMENT, p)) for p in double_support) < 0.006
