"""exo_sensors.encoder against known signals and every kind of bad input (plain module)."""
import math
from collections import namedtuple

import numpy as np
import pytest

from exo_common.joints import JOINT_NAMES
from exo_common.params import resolve
from exo_sensors.encoder import (FOURTEEN_BIT_RESOLUTION, PARAMS, EncoderProcessor, alpha_beta_gains,
                                 velocity_delay)

# Stand-in limits (the node reads the URDF's): hip, knee, ankle per leg.
Limits = namedtuple('Limits', 'name lower upper velocity effort')
STAND_IN = {name: Limits(name, -0.3, 1.9, 5.0, 100.0) for name in JOINT_NAMES}
PERIOD = 1e-3
MID = [0.8] * 6


def processor(**overrides):
    return EncoderProcessor(STAND_IN, resolve(PARAMS, overrides))


def quantise(q):
    return np.round(np.asarray(q) / FOURTEEN_BIT_RESOLUTION) * FOURTEEN_BIT_RESOLUTION


def feed(proc, stamp, positions, efforts=(), names=JOINT_NAMES, now=0.0):
    return proc.update(stamp, now, list(names), list(positions), list(efforts))


def test_sinusoid_velocity_matches_derivative_with_the_stated_delay():
    proc = processor()
    t = np.arange(3000) * PERIOD
    amplitude, omega = 0.4, 2 * math.pi * 1.0
    raw = quantise(0.8 + amplitude * np.sin(omega * t))
    velocities = []
    for stamp, q in zip(t, raw):
        assert feed(proc, float(stamp), [q] * 6) == []
        velocities.append(proc.velocity[0])
    velocities = np.array(velocities)[500:]
    t = t[500:]
    delay = velocity_delay(*alpha_beta_gains(FOURTEEN_BIT_RESOLUTION, 50.0, PERIOD), PERIOD)
    truth_delayed = amplitude * omega * np.cos(omega * (t - delay))
    error = velocities - truth_delayed
    assert np.sqrt(np.mean(error ** 2)) < 0.02 * amplitude * omega
    # the best-fitting delay (least squares over a grid) is the stated one
    grid = np.arange(0.0, 6e-3, 1e-4)
    fits = [np.mean((velocities - amplitude * omega * np.cos(omega * (t - d))) ** 2) for d in grid]
    assert abs(grid[int(np.argmin(fits))] - delay) < 3e-4
    # and much quieter than differencing the quantised positions
    raw_difference = np.diff(raw[500:]) / PERIOD
    assert np.std(error) < 0.3 * np.std(raw_difference - amplitude * omega * np.cos(omega * (t[1:] - PERIOD / 2)))


def test_ramp_velocity_has_no_steady_state_error():
    proc = processor()
    velocities = []
    for k in range(600):
        feed(proc, k * PERIOD, quantise([0.1 + 1.5 * k * PERIOD] * 6))
        velocities.append(proc.velocity[0])
    # quantisation makes the estimate scatter by a few 0.01 rad/s; its mean has no lag error
    assert np.mean(velocities[200:]) == pytest.approx(1.5, abs=0.005)


def test_calibration_offset_and_direction_apply_to_position_and_effort():
    proc = processor(**{'calibration.offset': [0.1, 0.0, 0.0, 0.0, 0.0, -0.2],
                        'calibration.direction': [1, 1, 1, 1, 1, -1]})
    assert feed(proc, 0.0, [0.6, 0.5, 0.5, 0.5, 0.5, -0.7], efforts=[1.0, 2, 3, 4, 5, 6]) == []
    assert proc.position[0] == pytest.approx(0.5) and proc.position[5] == pytest.approx(0.5)
    assert proc.effort == [1.0, 2.0, 3.0, 4.0, 5.0, -6.0]


def test_names_in_another_order_are_reordered():
    proc = processor()
    names = list(reversed(JOINT_NAMES))
    assert feed(proc, 0.0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], efforts=[1, 2, 3, 4, 5, 6], names=names) == []
    assert proc.position == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert proc.effort == [6, 5, 4, 3, 2, 1]


def bad_position(joint, value):
    positions = list(MID)
    positions[JOINT_NAMES.index(joint)] = value
    return positions


@pytest.mark.parametrize('value, kind', [(math.nan, 'non-finite position'), (math.inf, 'non-finite position'),
                                         (-math.inf, 'non-finite position'), (2.5, 'out of range'),
                                         (-0.4, 'out of range'), (0.9, 'jump')])
def test_bad_joint_value_is_refused_and_names_joint_and_value(value, kind):
    proc = processor()
    assert feed(proc, 0.0, MID) == []
    problems = feed(proc, PERIOD, bad_position('left_knee_joint', value))
    assert [key for key, _, _ in problems] == [f'left_knee_joint: {kind}']
    key, message, values = problems[0]
    assert 'left_knee_joint' in message and values['joint'] == 'left_knee_joint'
    assert values['value'] == value or (math.isnan(value) and math.isnan(values['value']))
    assert proc.position == MID  # nothing new published
    assert feed(proc, 2 * PERIOD, MID) == []  # the next good sample passes


def test_jump_within_velocity_limit_times_elapsed_time_is_accepted():
    proc = processor()
    feed(proc, 0.0, MID)
    # 1.5 x 5 rad/s x 10 ms = 75 mrad allowed after 10 ms
    assert feed(proc, 0.010, bad_position('right_hip_joint', 0.8 + 0.07)) == []
    assert feed(proc, 0.011, bad_position('right_hip_joint', 0.8 + 0.07 + 0.02))[0][0] == 'right_hip_joint: jump'


def test_non_finite_effort_is_refused():
    proc = processor()
    problems = feed(proc, 0.0, MID, efforts=[0, 0, 0, 0, math.nan, 0])
    assert problems[0][0] == 'right_knee_joint: non-finite effort'


@pytest.mark.parametrize('names, positions, efforts, key', [
    (JOINT_NAMES[:5], MID[:5], (), 'names'),
    (list(JOINT_NAMES[:5]) + ['left_hip_joint'], MID, (), 'names'),
    (list(JOINT_NAMES[:5]) + ['elbow_joint'], MID, (), 'names'),
    (JOINT_NAMES, MID[:5], (), 'length'),
    (JOINT_NAMES, MID, (1.0, 2.0), 'length'),
])
def test_wrong_names_or_lengths_are_refused(names, positions, efforts, key):
    proc = processor()
    problems = feed(proc, 0.0, positions, efforts, names=names)
    assert [k for k, _, _ in problems] == [key]
    assert feed(proc, PERIOD, MID) == []


@pytest.mark.parametrize('stamp, now, words', [
    (1.0, 2.0, 'stale'), (1.1, 1.0, 'future'), (0.9995, 1.0, 'duplicate'), (0.999, 1.0, 'out-of-order')])
def test_bad_stamps_are_refused(stamp, now, words):
    proc = processor()
    assert feed(proc, 0.9995, MID, now=1.0) == []
    problems = feed(proc, stamp, MID, now=now)
    assert problems[0][0] == f'{words} stamp' and words in problems[0][1]


def test_refused_samples_do_not_enter_the_velocity_filter():
    proc = processor()
    for k in range(100):
        feed(proc, k * PERIOD, MID)
    feed(proc, 0.1, bad_position('left_hip_joint', math.nan))
    feed(proc, 0.101, bad_position('left_hip_joint', 1.8))
    assert feed(proc, 0.102, MID) == []
    assert proc.velocity == pytest.approx([0.0] * 6, abs=1e-9)


def test_missing_limits_are_an_error():
    with pytest.raises(ValueError, match='right_ankle_joint'):
        EncoderProcessor({k: v for k, v in STAND_IN.items() if k != 'right_ankle_joint'}, resolve(PARAMS, {}))
