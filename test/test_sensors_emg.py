"""exo_sensors.emg: streaming equals scipy, envelope timing, MVC, electrode checks (plain module)."""
import numpy as np
import pytest
from scipy import signal

from exo_common.joints import EMG_CHANNELS
from exo_common.params import resolve
from exo_sensors.emg import (ENVELOPE_HALF_FALL_S, ENVELOPE_HALF_RISE_S, PARAMS, EmgProcessor, MvcCalibration,
                             batch_problem, continuity_problem, design_bandpass, design_envelope,
                             envelope_delay, non_finite_problem, reorder_columns)

FS = 2000.0
N = len(EMG_CHANNELS)


def params(**overrides):
    return resolve(PARAMS, overrides)


def noise(seconds, amplitude=0.1, seed=0):
    return amplitude * np.random.default_rng(seed).standard_normal((int(seconds * FS), N))


def run_in_batches(processor, samples, rng=None):
    """Feed irregular batches (1..60 samples) and return the concatenated envelope."""
    rng = rng or np.random.default_rng(1)
    outputs, start = [], 0
    while start < len(samples):
        stop = min(len(samples), start + int(rng.integers(1, 60)))
        outputs.append(processor.process(samples[start:stop]))
        start = stop
    return np.vstack(outputs)


def test_streaming_output_equals_sosfilt_over_all_samples():
    raw = noise(2.0) + 0.3 * np.sin(2 * np.pi * 50 * np.arange(4000) / FS)[:, None] + 0.2
    processor = EmgProcessor(params())
    streamed = run_in_batches(processor, raw)
    p = params()
    expected = signal.sosfilt(design_envelope(p), np.abs(signal.sosfilt(design_bandpass(p), raw, axis=0)), axis=0)
    np.testing.assert_allclose(streamed, expected, rtol=1e-10, atol=1e-13)
    assert processor.envelope == pytest.approx(expected[-1])


def test_band_pass_and_notch_reject_mains_and_drift_but_keep_emg_band():
    sos = design_bandpass(params())
    t = np.arange(int(4 * FS)) / FS
    gains = {}
    for frequency in (2.0, 50.0, 100.0, 150.0, 120.0):
        out = signal.sosfilt(sos, np.sin(2 * np.pi * frequency * t))
        gains[frequency] = np.std(out[int(2 * FS):]) / np.std(np.sin(2 * np.pi * frequency * t))
    assert gains[2.0] < 0.01 and gains[50.0] < 0.01 and gains[100.0] < 0.02 and gains[150.0] < 0.02
    assert gains[120.0] > 0.9
    _, h = signal.sosfreqz(sos, worN=[10.0, 500.0, 700.0], fs=FS)
    assert np.all(np.abs(h[[0, 2]]) < 0.5)


def test_60_hz_mains_moves_the_notch():
    sos = design_bandpass(params(**{'filter.mains_frequency': 60.0}))
    _, h = signal.sosfreqz(sos, worN=[50.0, 60.0], fs=FS)
    assert abs(h[1]) < 0.01 < abs(h[0])


def test_burst_envelope_timing_and_delay():
    """A 1 s burst of EMG-like noise: the envelope rises and falls with the stated lag."""
    onset, offset = 1.0, 2.0
    raw = noise(3.0, amplitude=0.01)
    burst = slice(int(onset * FS), int(offset * FS))
    raw[burst] += noise(offset - onset, amplitude=0.5, seed=3)
    envelope = run_in_batches(EmgProcessor(params()), raw).mean(axis=1)  # 8 channels: less ripple
    t = np.arange(len(envelope)) / FS
    plateau = np.median(envelope[int(1.5 * FS):int(2.0 * FS)])
    rise = t[np.argmax(envelope > plateau / 2)] - onset
    fall = t[int(offset * FS) + np.argmax(envelope[int(offset * FS):] < plateau / 2)] - offset
    assert rise == pytest.approx(ENVELOPE_HALF_RISE_S, abs=0.005)
    assert fall == pytest.approx(ENVELOPE_HALF_FALL_S, abs=0.008)
    assert envelope[int(0.9 * FS)] < 0.1 * plateau  # quiet before the burst
    # group delay of the low-pass, sqrt(2) / (2 pi fc) for a 2nd-order Butterworth
    assert envelope_delay(params()) == pytest.approx(np.sqrt(2) / (2 * np.pi * 6.0), rel=0.01)


def test_activation_is_envelope_over_mvc_clipped_to_one():
    processor = EmgProcessor(params(**{'mvc.left_rectus_femoris': 0.2, 'mvc.left_biceps_femoris': 0.01}))
    processor.process(noise(1.0, amplitude=0.1))
    envelope, activation = processor.envelope, processor.activation
    assert activation[0] == pytest.approx(envelope[0] / 0.2)
    assert activation[1] == 1.0 and 0.0 <= activation.min()
    problems = processor.electrode_problems()
    assert [(channel, kind) for channel, kind, _, _ in problems] == [('left_biceps_femoris', 'above MVC')]


def test_mvc_calibration_records_the_peak_envelope_in_its_window():
    calibration = MvcCalibration(n_samples=100, n_channels=2)
    calibration.feed(np.array([[1.0, 2.0]] * 60))
    assert not calibration.done
    calibration.feed(np.vstack([[[3.0, 0.5]] * 40, [[9.0, 9.0]] * 20]))  # the last 20 are after the window
    assert calibration.done
    assert list(calibration.peaks) == [3.0, 2.0]


def test_flat_line_and_clipping_are_reported_per_channel():
    raw = noise(0.3, amplitude=0.2)
    raw[:, 2] = 0.0005  # lost electrode: constant
    raw[::20, 5] = 5.0  # 5 % of the samples at full scale
    processor = EmgProcessor(params())
    run_in_batches(processor, raw[:int(0.2 * FS)])
    assert processor.electrode_problems() is None  # window not over yet
    run_in_batches(processor, raw[int(0.2 * FS):])
    found = {(channel, kind) for channel, kind, _, _ in processor.electrode_problems()}
    assert found == {(EMG_CHANNELS[2], 'flat line'), (EMG_CHANNELS[5], 'clipping')}
    processor.process(noise(0.3, amplitude=0.2, seed=5))
    assert processor.electrode_problems() == []  # windows restart


def test_batch_structure_problems():
    rows = [[0.0] * N] * 20
    good = batch_problem(EMG_CHANNELS, rows, [0.0, 19 / FS], EMG_CHANNELS, FS)
    assert good is None
    assert batch_problem(EMG_CHANNELS[:7], rows, [0.0, 19 / FS], EMG_CHANNELS, FS)[0] == 'names'
    assert batch_problem(EMG_CHANNELS, [], [], EMG_CHANNELS, FS)[0] == 'length'
    short = rows[:5] + [[0.0] * 7] + rows[6:]
    assert batch_problem(EMG_CHANNELS, short, [0.0, 19 / FS], EMG_CHANNELS, FS)[:1] == ('length',)
    assert batch_problem(EMG_CHANNELS, rows, [0.0, 19 / 1000.0], EMG_CHANNELS, FS)[0] == 'sample rate'


def test_non_finite_sample_names_channel_and_value():
    block = np.zeros((20, N))
    block[7, 3] = np.inf
    channel, message, values = non_finite_problem(block, EMG_CHANNELS)
    assert channel == EMG_CHANNELS[3] and values['value'] == np.inf and 'inf' in message
    assert non_finite_problem(np.zeros((20, N)), EMG_CHANNELS) is None


def test_reorder_and_continuity():
    names = list(reversed(EMG_CHANNELS))
    order = reorder_columns(names, EMG_CHANNELS)
    assert [names[i] for i in order] == list(EMG_CHANNELS)
    assert reorder_columns(EMG_CHANNELS, EMG_CHANNELS) is None
    assert continuity_problem(None, 1.0, FS) is None
    assert continuity_problem(1.0, 1.0 + 1 / FS, FS) is None
    assert 'lost' in continuity_problem(1.0, 1.0 + 21 / FS, FS)[0]
    assert 'overlaps' in continuity_problem(1.0, 1.0 - 5 / FS, FS)[0]

