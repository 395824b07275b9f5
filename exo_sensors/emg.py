"""Surface EMG: raw batches in, per-channel envelope normalised to MVC out.

Plain streaming module (no rclpy); `exo_sensors.emg_node` wraps it.

Chain per channel, all causal and streaming (second-order sections with persistent state, so
the output over any split of the samples into batches equals scipy.signal.sosfilt over all of
them at once; test_sensors_emg checks this):
1. band-pass 20-450 Hz, Butterworth of order `filter.bandpass_order` (20 Hz removes motion
   artefacts, De Luca et al. 2010, J Biomech 43(8):1573; the upper edge keeps the surface EMG
   band, SENIAM: Hermens et al. 2000, J Electromyogr Kinesiol 10(5):361);
2. notches at the mains frequency `filter.mains_frequency` and its first
   `filter.mains_harmonics` - 1 harmonics inside the band (quality factor `filter.notch_q`);
3. full-wave rectification;
4. low-pass envelope, Butterworth order 2 at `filter.envelope_cutoff` (6 Hz by default, within
   the 3-10 Hz used for gait envelopes). Its delay: group delay at DC sqrt(2) / (2 pi fc) =
   37.5 ms at 6 Hz (`envelope_delay()`); measured on a burst (test_sensors_emg), the envelope
   crosses half of its plateau about 40 ms after the burst onset and falls back below half
   about 48 ms after its end (`ENVELOPE_HALF_RISE_S`, `ENVELOPE_HALF_FALL_S`).
   Controllers using the envelope must allow for this lag.
5. activation = envelope / MVC reference of the channel (`mvc.<channel>`, mV), clipped to 0..1;
   an envelope above 110 % of its reference is reported (reference too low: recalibrate).

MVC calibration (`MvcCalibration`): during a window the peak envelope of each channel is kept;
at the end the peaks become the new references (the node offers this as a service).

Electrode checks per channel over windows of `checks.window` s: a lost electrode shows as a
flat line (raw peak-to-peak below `checks.flat_peak_to_peak`), a saturated amplifier as
clipping (more than `checks.clip_fraction` of the samples at or beyond `checks.clip_level`).
"""
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import signal

from exo_common.joints import EMG_CHANNELS
from exo_common.params import ParamSpec

BAND_HZ = (20.0, 450.0)
# measured in test_sensors_emg with the defaults (6 Hz, 2 kHz): burst onset/offset to half plateau
ENVELOPE_HALF_RISE_S = 0.040
ENVELOPE_HALF_FALL_S = 0.048

PARAMS = [
    ParamSpec('sample_rate', 2000.0, 'EMG sampling rate of the device', 'Hz', 1000.0, 20000.0,
              read_only=True),
    ParamSpec('filter.bandpass_order', 4, 'order of the 20-450 Hz Butterworth band-pass (per edge)',
              '', 1, 8, read_only=True),
    ParamSpec('filter.mains_frequency', 50.0, 'mains frequency notched out (50 Hz Europe/Asia, '
              '60 Hz Americas)', 'Hz', 40.0, 70.0, read_only=True),
    ParamSpec('filter.mains_harmonics', 3, 'how many multiples of the mains frequency are notched '
              '(1 = the fundamental only)', '', 0, 9, read_only=True),
    ParamSpec('filter.notch_q', 30.0, 'quality factor of the mains notches (bandwidth = f / Q)', '',
              1.0, 200.0, read_only=True),
    ParamSpec('filter.envelope_cutoff', 6.0, 'cut-off of the envelope low-pass', 'Hz', 1.0, 50.0,
              read_only=True),
    ParamSpec('checks.window', 0.25, 'window of the flat-line and clipping checks', 's', 0.02, 10.0),
    ParamSpec('checks.flat_peak_to_peak', 0.002, 'raw peak-to-peak below this over a window = lost '
              'electrode (flat line)', 'mV', 0.0, 1.0),
    ParamSpec('checks.clip_level', 5.0, 'amplifier full scale: samples at or beyond it are clipped',
              'mV', 0.01, 1000.0),
    ParamSpec('checks.clip_fraction', 0.01, 'more clipped samples than this fraction of a window is '
              'reported', '', 0.0, 1.0),
    ParamSpec('mvc.calibration_duration', 5.0, 'length of the MVC calibration window', 's', 0.5, 60.0),
    ParamSpec('plausibility.max_age', 0.1, 'batches whose last sample is older than this are refused',
              's', 0.001, 5.0),
    ParamSpec('plausibility.max_future', 0.005, 'batches stamped further ahead of the node clock than '
              'this are refused', 's', 0.0, 5.0),
    *[ParamSpec(f'mvc.{channel}', 1.0, f'maximum voluntary contraction envelope of {channel}',
                'mV', 1e-4, 100.0) for channel in EMG_CHANNELS],
]


def design_bandpass(params: Mapping[str, object]) -> np.ndarray:
    """Second-order sections of the band-pass and the mains notches, in that order."""
    fs = params['sample_rate']
    sections = [signal.butter(params['filter.bandpass_order'], BAND_HZ, btype='bandpass', fs=fs,
                              output='sos')]
    mains = params['filter.mains_frequency']
    for harmonic in range(1, params['filter.mains_harmonics'] + 1):
        frequency = harmonic * mains
        if frequency < BAND_HZ[1]:
            b, a = signal.iirnotch(frequency, params['filter.notch_q'], fs=fs)
            sections.append(signal.tf2sos(b, a))
    return np.vstack(sections)


def design_envelope(params: Mapping[str, object]) -> np.ndarray:
    return signal.butter(2, params['filter.envelope_cutoff'], btype='lowpass',
                         fs=params['sample_rate'], output='sos')


def envelope_delay(params: Mapping[str, object]) -> float:
    """Group delay (s) of the envelope low-pass at low frequency."""
    b, a = signal.sos2tf(design_envelope(params))
    _, samples = signal.group_delay((b, a), w=[1e-4])
    return float(samples[0]) / params['sample_rate']


class StreamingSos:
    """scipy.signal.sosfilt over consecutive blocks, state kept between them.

    Args:
        sos: second-order sections (n_sections, 6).
        n_channels: columns of every block (samples along axis 0).
    """

    def __init__(self, sos: np.ndarray, n_channels: int):
        self.sos = sos
        self.zi = np.zeros((sos.shape[0], 2, n_channels))

    def __call__(self, block: np.ndarray) -> np.ndarray:
        out, self.zi = signal.sosfilt(self.sos, block, axis=0, zi=self.zi)
        return out


class EmgProcessor:
    """Filters, envelope, normalisation and electrode checks for all channels.

    Args:
        params: the PARAMS values (name -> value).
        channels: channel names in output order (default EMG_CHANNELS).
    """

    def __init__(self, params: Mapping[str, object], channels: Sequence[str] = EMG_CHANNELS):
        self.channels = tuple(channels)
        n = len(self.channels)
        self.fs = params['sample_rate']
        self.bandpass = StreamingSos(design_bandpass(params), n)
        self.lowpass = StreamingSos(design_envelope(params), n)
        self.configure(params)
        self._window_min = np.full(n, np.inf)
        self._window_max = np.full(n, -np.inf)
        self._window_clipped = np.zeros(n)
        self._window_samples = 0
        self._window_envelope = np.zeros(n)
        self.envelope = np.zeros(n)
        self.activation = np.zeros(n)

    def configure(self, params: Mapping[str, object]) -> None:
        """Apply live parameters (MVC references, check thresholds)."""
        self.mvc = np.array([params[f'mvc.{channel}'] for channel in self.channels])
        self._window_length = max(1, int(round(params['checks.window'] * self.fs)))
        self._flat = params['checks.flat_peak_to_peak']
        self._clip_level = params['checks.clip_level']
        self._clip_fraction = params['checks.clip_fraction']

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter a block (samples x channels, mV) and return its envelope (samples x channels).

        Updates `envelope` and `activation` (last sample) and the electrode-check windows.
        """
        envelope = self.lowpass(np.abs(self.bandpass(block)))
        self.envelope = envelope[-1]
        self.activation = np.clip(self.envelope / self.mvc, 0.0, 1.0)
        np.minimum(self._window_min, block.min(axis=0), out=self._window_min)
        np.maximum(self._window_max, block.max(axis=0), out=self._window_max)
        self._window_clipped += np.count_nonzero(np.abs(block) >= self._clip_level, axis=0)
        self._window_samples += block.shape[0]
        np.maximum(self._window_envelope, self.envelope, out=self._window_envelope)
        return envelope

    def electrode_problems(self) -> Optional[list]:
        """At the end of each check window: a list of (channel, kind, message, values), else None."""
        if self._window_samples < self._window_length:
            return None
        problems = []
        seconds = self._window_samples / self.fs
        peak_to_peak = self._window_max - self._window_min
        clipped = self._window_clipped / self._window_samples
        for i, channel in enumerate(self.channels):
            if peak_to_peak[i] < self._flat:
                problems.append((channel, 'flat line',
                                 f'{channel}: flat line (peak-to-peak {peak_to_peak[i] * 1e3:.2f} uV over '
                                 f'{seconds:.2f} s): electrode lost?', {'channel': channel,
                                                                         'value': float(peak_to_peak[i])}))
            if clipped[i] > self._clip_fraction:
                problems.append((channel, 'clipping',
                                 f'{channel}: {clipped[i] * 100:.1f} % of samples clipped at '
                                 f'+-{self._clip_level} mV', {'channel': channel, 'value': float(clipped[i])}))
            if self._window_envelope[i] > 1.1 * self.mvc[i]:
                problems.append((channel, 'above MVC',
                                 f'{channel}: envelope {self._window_envelope[i]:.3f} mV above its MVC '
                                 f'reference {self.mvc[i]:.3f} mV: recalibrate',
                                 {'channel': channel, 'value': float(self._window_envelope[i])}))
        self._window_min.fill(np.inf)
        self._window_max.fill(-np.inf)
        self._window_clipped.fill(0.0)
        self._window_envelope.fill(0.0)
        self._window_samples = 0
        return problems


class MvcCalibration:
    """Peak envelope per channel over a window of samples.

    Args:
        n_samples: window length in samples.
        n_channels: channels of each envelope block.
    """

    def __init__(self, n_samples: int, n_channels: int):
        self.remaining = n_samples
        self.peaks = np.zeros(n_channels)

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    def feed(self, envelope: np.ndarray) -> None:
        """Take an envelope block (samples x channels); samples beyond the window are ignored."""
        used = envelope[:max(0, self.remaining)]
        if len(used):
            np.maximum(self.peaks, used.max(axis=0), out=self.peaks)
        self.remaining -= len(used)


def batch_problem(names: Sequence[str], rows: Sequence[Sequence[float]], offsets: Sequence[float],
                  channels: Sequence[str], fs: float) -> Optional[tuple[str, str, dict]]:
    """Structural problems of a raw batch, or None.

    Args:
        names: joint_names of the batch; rows: one sequence of samples per point;
        offsets: time_from_start of each point (s); channels: expected names; fs: rate (Hz).
    """
    if len(names) != len(channels) or set(names) != set(channels):
        return 'names', f'expected EMG channels {list(channels)} (any order), got {list(names)}', \
            {'names': list(names)}
    if not rows:
        return 'length', 'empty batch', {'points': 0}
    bad = [i for i, row in enumerate(rows) if len(row) != len(channels)]
    if bad:
        return 'length', (f'point {bad[0]} has {len(rows[bad[0]])} values for {len(channels)} channels'), \
            {'point': bad[0], 'values': len(rows[bad[0]])}
    expected_last = (len(rows) - 1) / fs
    if abs(offsets[-1] - expected_last) > 0.25 / fs or abs(offsets[0]) > 0.25 / fs:
        return 'sample rate', (f'time_from_start runs {offsets[0]:.6f}..{offsets[-1]:.6f} s for {len(rows)} '
                               f'samples; expected 0..{expected_last:.6f} s at {fs} Hz'), \
            {'first': offsets[0], 'last': offsets[-1]}
    return None


def non_finite_problem(block: np.ndarray, channels: Sequence[str]) -> Optional[tuple[str, str, dict]]:
    """(channel, message, values) for the first channel holding NaN/Inf, or None."""
    finite = np.isfinite(block)
    if finite.all():
        return None
    sample, column = np.argwhere(~finite)[0]
    value = float(block[sample, column])
    channel = channels[column]
    return channel, f'{channel}: sample {sample} of the batch is {value}; batch refused', \
        {'channel': channel, 'value': value}


def reorder_columns(names: Sequence[str], channels: Sequence[str]) -> Optional[list]:
    """Column index of each channel in a batch whose names come in another order (None if same)."""
    if list(names) == list(channels):
        return None
    return [list(names).index(channel) for channel in channels]



def continuity_problem(previous_end: Optional[float], stamp: float, fs: float) -> Optional[tuple[str, dict]]:
    """(message, values) when a batch does not start one sample after the previous one ended.

    Args:
        previous_end: stamp of the previous batch's last sample (None for the first batch).
        stamp: stamp of this batch's first sample; fs: sample rate (Hz).
    """
    if previous_end is None:
        return None
    gap = stamp - previous_end - 1.0 / fs
    if abs(gap) <= 0.5 / fs:
        return None
    if gap > 0:
        return f'{gap * fs:.0f} samples lost before this batch ({gap * 1e3:.1f} ms): envelope ' \
               f'continues across the gap', {'gap_s': gap}
    return f'batch overlaps the previous one by {-gap * 1e3:.1f} ms', {'gap_s': gap}
