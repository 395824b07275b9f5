"""Gait event detector: real foot-IMU recording with reference events, and synthetic shank gyro."""
import csv

import numpy as np
import pytest

from exo_analysis.events import (HEEL_STRIKE, TOE_OFF, DetectorConfig, GyroEventDetector, lowpass_taps,
                                 match_events)
from exo_analysis.synthetic import synthetic_gait

RATE_HZ = 204.8
TOLERANCE_S = 0.15


def run_detector(leg, times, rates, config):
    detector = GyroEventDetector(leg, config)
    events = []
    for t, w in zip(times, rates):
        events += detector.add(float(t), float(w))
    return detector, events


@pytest.fixture(scope='module')
def gaitmap(shared_data):
    folder = shared_data / 'imu_gait_events'
    imu = np.loadtxt(folder / 'imu_sample.csv', delimiter=',', skiprows=2)
    with open(folder / 'stride_events_sample.csv') as handle:
        strides = list(csv.DictReader(handle))
    return imu, strides


@pytest.mark.parametrize('leg,column', [('left', 9), ('right', 10)])
def test_real_recording_heel_strikes_and_toe_offs(gaitmap, leg, column):
    imu, strides = gaitmap
    times = np.arange(len(imu)) / RATE_HZ
    # gyr_y of these foot sensors is negative in swing; foot sensors need no heel-strike delay
    rates = -np.radians(imu[:, column])
    detector, events = run_detector(leg, times, rates, DetectorConfig(sample_rate_hz=RATE_HZ))
    heel_strikes = [e.time for e in events if e.kind == HEEL_STRIKE]
    toe_offs = [e.time for e in events if e.kind == TOE_OFF]
    reference_hs = sorted({float(s[k]) / RATE_HZ for s in strides if s['foot'] == leg for k in ('ic', 'pre_ic')})
    reference_to = sorted({float(s['tc']) / RATE_HZ for s in strides if s['foot'] == leg})

    hs = match_events(heel_strikes, reference_hs, TOLERANCE_S)
    detected_fraction = 1.0 - hs['missed'] / hs['reference']
    median_ms = 1000 * float(np.median(np.abs(hs['errors'])))
    span = [t for t in heel_strikes if reference_hs[0] - 0.5 < t < reference_hs[-1] + 0.5]
    false_in_span = match_events(span, reference_hs, TOLERANCE_S)['false']
    print(f'{leg}: {hs["reference"]} reference heel strikes, detected {detected_fraction:.1%}, median |error| '
          f'{median_ms:.1f} ms, false detections {hs["false"]} in the file ({false_in_span} within the '
          f'reference span)')
    assert detected_fraction >= 0.98
    assert median_ms <= 25.0
    assert false_in_span <= 1  # figures measured: left 1 (a turn), right 0
    to = match_events(toe_offs, reference_to, TOLERANCE_S)
    print(f'{leg}: toe offs detected {1.0 - to["missed"] / to["reference"]:.1%}, median |error| '
          f'{1000 * float(np.median(np.abs(to["errors"]))):.1f} ms')
    assert 1.0 - to['missed'] / to['reference'] >= 0.95
    assert 1000 * float(np.median(np.abs(to['errors']))) <= 25.0


def test_filter_taps_match_scipy_firwin():
    from scipy.signal import firwin
    np.testing.assert_allclose(lowpass_taps(11, 15.0, 204.8), firwin(11, 15.0, fs=204.8), atol=1e-12)


def test_synthetic_shank_gyro_heel_strikes_within_10_ms():
    gait = synthetic_gait(30.0, speed_mps=0.8)
    config = DetectorConfig(heel_strike_delay_fraction=0.025)
    for index, leg in enumerate(('left', 'right')):
        _, events = run_detector(leg, gait.times, gait.shank_rate[:, index], config)
        strikes = [e.time for e in events if e.kind == HEEL_STRIKE]
        result = match_events(strikes, list(gait.heel_strikes[leg]), 0.1)
        assert result['false'] == 0 and result['missed'] <= 1  # left walks from a heel strike at t = 0
        # once a stride time is known (third heel strike on), the delay (2.5 % of it) applies
        later = match_events(strikes[2:], list(gait.heel_strikes[leg]), 0.1)
        assert np.max(np.abs(later['errors'])) < 0.010


def test_heel_strike_too_soon_is_rejected_and_counted():
    detector = GyroEventDetector('left', DetectorConfig(min_stride_s=0.8))
    times = np.arange(0, 10, 0.005)
    rates = 2.0 * np.sin(2 * np.pi * times / 0.6)  # a 0.6 s "stride": faster than allowed
    for t, w in zip(times, rates):
        detector.add(float(t), float(w))
    assert detector.counters.rejected['too_soon'] > 0
    assert detector.counters.heel_strikes < 10 / 0.6 / 2 + 1


def test_standing_still_gives_no_events():
    rng = np.random.default_rng(1)
    _, events = run_detector('left', np.arange(0, 20, 0.005), rng.normal(0.0, 0.05, 4000), DetectorConfig())
    assert events == []


def test_even_taps_refused():
    with pytest.raises(ValueError):
        GyroEventDetector('left', DetectorConfig(taps=10))


def test_stiff_knee_toe_off_is_the_dip_before_swing_not_the_loading_response():
    """A stiff knee (60 % of normal flexion) flattens the mid-stance hump of the shank rate:
    the loading-response dip stays the deepest, and toe off is still the last dip before swing."""
    gait = synthetic_gait(15.0, speed_mps=0.8, scale={'left': (1.0, 0.6, 1.0)})
    _, events = run_detector('left', gait.times, gait.shank_rate[:, 0], DetectorConfig(sample_rate_hz=200.0))
    phases = [(e.time / gait.stride_time) % 1.0 for e in events if e.kind == TOE_OFF]
    assert len(phases) >= 8
    assert all(0.45 < p < 0.65 for p in phases), phases  # the loading response is at 0.05-0.1

