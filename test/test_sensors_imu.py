"""exo_sensors.imu: orientation of known rotations, bias at rest, covariances, a real recording."""
import math

import numpy as np
import pytest
from scipy.signal import find_peaks
from transforms3d import euler, quaternions

from exo_common.params import resolve
from exo_sensors.imu import GRAVITY, PARAMS, ImuFilter, check_params, tilt_quaternion

RATE = 200.0
BIAS = np.array([0.02, -0.03, 0.01])  # rad/s


def make_filter(**overrides):
    return ImuFilter(resolve(PARAMS, overrides))


def specific_force(q):
    """What an accelerometer at rest with orientation q (w, x, y, z) measures."""
    return quaternions.rotate_vector([0.0, 0.0, GRAVITY], quaternions.qconjugate(q))


def angle_between(q1, q2):
    return 2.0 * math.acos(min(1.0, abs(float(np.dot(q1, q2)))))


def test_first_sample_sets_tilt_from_gravity():
    q = euler.euler2quat(0.3, -0.2, 0.0)
    imu = make_filter()
    assert imu.update(0.0, 0.0, specific_force(q), [0.0] * 3) is None
    up = quaternions.rotate_vector([0.0, 0.0, 1.0], quaternions.qconjugate(q))
    assert quaternions.rotate_vector(up, imu.orientation) == pytest.approx([0.0, 0.0, 1.0], abs=1e-12)
    upside_down = tilt_quaternion([0.0, 0.0, -GRAVITY])
    assert quaternions.rotate_vector([0.0, 0.0, -1.0], upside_down) == pytest.approx([0.0, 0.0, 1.0])


def test_rest_then_rotation_orientation_follows_truth_and_bias_is_measured():
    imu = make_filter()
    q_true = euler.euler2quat(0.1, 0.2, 0.0)
    k = 0
    for k in range(int(3 * RATE)):  # 3 s at rest, with a gyro bias
        assert imu.update(k / RATE, 0.0, specific_force(q_true), BIAS) is None
    assert imu.bias_measured and imu.bias == pytest.approx(BIAS, abs=1e-4)
    rest_cov = imu.orientation_covariance
    # the heading drifted while the bias was not yet known (yaw is unobservable): compare the
    # rotation since the end of the rest, i.e. truth with that world-frame heading offset
    heading_offset = quaternions.qmult(imu.orientation, quaternions.qconjugate(q_true))
    assert angle_between(heading_offset, [1.0, 0.0, 0.0, 0.0]) < 0.25 * 0.03 * 1.5
    assert 0.035 ** 2 <= rest_cov[0] < (1.2 * 0.035) ** 2  # relaxing towards the aided floor
    # 90 degrees about a tilted axis in 1 s, then 90 degrees about world-aligned body x
    for rate_vector in (np.array([0.3, 0.4, 1.2]), np.array([math.pi / 2, 0.0, 0.0])):
        for _ in range(int(RATE)):
            k += 1
            q_true = quaternions.qmult(q_true, quaternions.qexp(np.r_[0.0, rate_vector / (2 * RATE)]))
            assert imu.update(k / RATE, 0.0, specific_force(q_true), rate_vector + BIAS) is None
        assert angle_between(imu.orientation, quaternions.qmult(heading_offset, q_true)) < math.radians(0.1)
        assert imu.angular_velocity == pytest.approx(rate_vector, abs=1e-3)
    assert imu.orientation_covariance[8] > rest_cov[8]  # yaw uncertainty only grows


def test_tilt_converges_and_accelerations_far_from_g_are_not_trusted():
    imu = make_filter()
    level = euler.euler2quat(0.0, 0.0, 0.0)
    q_true = euler.euler2quat(0.4, 0.0, 0.0)
    imu.update(0.0, 0.0, specific_force(level), [0.0] * 3)  # starts believing it is level
    for k in range(1, int(10 * RATE)):
        imu.update(k / RATE, 0.0, specific_force(q_true), [0.0] * 3)
    assert angle_between(imu.orientation, q_true) < math.radians(0.2)
    # a 1 g horizontal push while still: no correction, orientation and tilt uncertainty drift/grow
    before, tilt_var = imu.orientation.copy(), imu.orientation_covariance[0]
    for k in range(int(10 * RATE), int(10.5 * RATE)):
        imu.update(k / RATE, 0.0, specific_force(q_true) + [GRAVITY, 0.0, 0.0], [0.0] * 3)
    assert angle_between(imu.orientation, before) < 1e-9
    assert imu.orientation_covariance[0] > tilt_var


@pytest.mark.parametrize('accel, gyro, kind', [
    ([math.nan, 0.0, GRAVITY], [0.0] * 3, 'non-finite'),
    ([0.0, 0.0, GRAVITY], [0.0, math.inf, 0.0], 'non-finite'),
    ([0.0, 0.0, 400.0], [0.0] * 3, 'out of range'),
    ([0.0, 0.0, GRAVITY], [50.0, 0.0, 0.0], 'out of range'),
    ([0.0, 0.0, 0.0], [0.0] * 3, 'zero accel'),
])
def test_implausible_samples_are_refused(accel, gyro, kind):
    imu = make_filter()
    imu.update(0.0, 0.0, [0.0, 0.0, GRAVITY], [0.0] * 3)
    before = imu.orientation.copy()
    problem = imu.update(0.005, 0.0, accel, gyro)
    assert problem[0] == kind
    assert np.array_equal(imu.orientation, before)
    assert imu.update(0.01, 0.0, [0.0, 0.0, GRAVITY], [0.0] * 3) is None


@pytest.mark.parametrize('stamp, now, kind', [(1.0, 2.0, 'stale stamp'), (1.5, 1.0, 'future stamp'),
                                              (0.995, 1.0, 'duplicate stamp'), (0.9, 1.0, 'out-of-order stamp')])
def test_bad_stamps_are_refused(stamp, now, kind):
    imu = make_filter()
    assert imu.update(0.995, 1.0, [0.0, 0.0, GRAVITY], [0.0] * 3) is None
    assert imu.update(stamp, now, [0.0, 0.0, GRAVITY], [0.0] * 3)[0] == kind


def test_accel_gate_limits_must_be_ordered():
    assert check_params(resolve(PARAMS, {})) is None
    assert 'below' in check_params(resolve(PARAMS, {'filter.accel_error_low': 0.3}))


def test_real_gait_recording_swing_peaks_fall_in_reference_swings(shared_data):
    """Foot-worn IMUs (gaitmap example, 204.8 Hz, gyro in deg/s) with an added gyro bias.

    The bias-corrected sagittal rate (sensor y) peaks once in mid-swing: every peak inside the
    annotated walk lies between a reference toe-off and the next initial contact.
    """
    folder = shared_data / 'imu_gait_events'
    data = np.genfromtxt(folder / 'imu_sample.csv', delimiter=',', skip_header=2)
    strides = np.genfromtxt(folder / 'stride_events_sample.csv', delimiter=',', names=True, dtype=None,
                            encoding=None)
    rate = 204.8
    for side, column in (('left', 0), ('right', 1)):
        accel = data[:, 1 + column:7:2]
        gyro = np.radians(data[:, 7 + column::2]) + BIAS
        imu = make_filter(**{'accel.range': 200.0})  # calibrated data slightly exceed the 16 g full scale
        sagittal, tilt = [], []
        for k in range(len(data)):
            assert imu.update(k / rate, 0.0, accel[k], gyro[k]) is None
            sagittal.append(imu.angular_velocity[1])
            tilt.append(angle_between(imu.orientation, [1.0, 0.0, 0.0, 0.0]))
        assert imu.bias_measured
        # measured while standing at the start and the end; the recording's own residual bias
        # differs by up to 0.005 rad/s between those two rests
        assert imu.bias == pytest.approx(BIAS, abs=0.01)
        assert np.all(np.isfinite(tilt))
        peaks, _ = find_peaks(-np.array(sagittal), height=3.0, distance=int(0.5 * rate))
        mine = strides[strides['foot'] == side]
        swings = list(zip(mine['tc'], mine['ic']))
        annotated = (peaks > mine['start'].min()) & (peaks < mine['end'].max())
        assert annotated.sum() >= len(mine) - 1
        for peak in peaks[annotated]:
            assert any(tc < peak < ic for tc, ic in swings), f'{side} peak at sample {peak} outside swing'
        one_per_swing = [sum(tc < p < ic for p in peaks) == 1 for tc, ic in swings]
        assert sum(one_per_swing) >= len(swings) - 1  # the long left stride 13 (a pause) has none
