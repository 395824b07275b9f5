"""Emulated sensors: absolute joint encoders, MEMS IMUs and surface EMG amplifiers.

Plain module (no rclpy, no MuJoCo): each device turns exact signals from the simulation into
what the real device would deliver, with its resolution, noise and artefacts, reproducibly from
a numpy Generator.
"""
from dataclasses import dataclass
import math

import numpy as np
from scipy import signal

G = 9.80665
DEG = math.pi / 180.0

# --- encoders ------------------------------------------------------------------------------
# Default: 17-bit single-turn absolute encoder on the joint output, as offered e.g. by the RLS
# AksIM-2 off-axis absolute rotary encoder family (17 to 20 bit resolution, RLS data sheet
# MBD01). One count = 2*pi / 2**17 = 47.9 microrad.
ENCODER_BITS = 17


def encoder_resolution(bits: int) -> float:
    """Angle of one count (rad) of a `bits`-bit single-turn absolute encoder."""
    return 2.0 * math.pi / (1 << bits)


def quantise(angles: np.ndarray, resolution: float) -> np.ndarray:
    """Encoder reading: the angle of the count the shaft is in (rounded to nearest)."""
    return np.round(angles / resolution) * resolution


# --- IMU -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImuSpec:
    """Noise figures of a MEMS IMU.

    Defaults: Bosch Sensortec BMI088 data sheet (BST-BMI088-DS001, rev. 1.4, 2018), typical
    values: accelerometer output noise density 175 micro-g/sqrt(Hz) (+-3 g range), zero-g
    offset +-20 mg; gyroscope output noise density 0.014 deg/s/sqrt(Hz), zero-rate offset
    +-1 deg/s, bias stability 2 deg/h. The accelerometer has no bias-stability figure in the
    data sheet; 0.04 mg (about 20x below the offset's temperature drift) is our assumption.
    Turn-on offsets are drawn once per run with the typical value as standard deviation; bias
    drift is a first-order Gauss-Markov process with the bias stability as its standard
    deviation and BIAS_CORRELATION_S as its correlation time.
    """
    accel_noise_density: float = 175e-6 * G        # m/s^2/sqrt(Hz)
    accel_offset: float = 20e-3 * G                 # m/s^2 (1 sd of the turn-on offset)
    accel_bias_stability: float = 0.04e-3 * G       # m/s^2
    gyro_noise_density: float = 0.014 * DEG         # rad/s/sqrt(Hz)
    gyro_offset: float = 1.0 * DEG                  # rad/s
    gyro_bias_stability: float = 2.0 * DEG / 3600.0  # rad/s


BIAS_CORRELATION_S = 100.0


class ImuArray:
    """Several IMUs of one type sampled together.

    Args:
        count: number of IMUs.
        rate_hz: output data rate; the noise bandwidth is taken as half of it.
        spec: noise figures.
        rng: numpy Generator.
    """

    def __init__(self, count: int, rate_hz: float, spec: ImuSpec, rng: np.random.Generator):
        self.spec = spec
        self.rng = rng
        bandwidth = 0.5 * rate_hz
        self.accel_sigma = spec.accel_noise_density * math.sqrt(bandwidth)
        self.gyro_sigma = spec.gyro_noise_density * math.sqrt(bandwidth)
        self.dt = 1.0 / rate_hz
        self._decay = math.exp(-self.dt / BIAS_CORRELATION_S)
        self._drive = math.sqrt(1.0 - self._decay ** 2)
        self.accel_bias = rng.normal(0.0, spec.accel_offset, (count, 3))
        self.gyro_bias = rng.normal(0.0, spec.gyro_offset, (count, 3))
        self._accel_drift = rng.normal(0.0, spec.accel_bias_stability, (count, 3))
        self._gyro_drift = rng.normal(0.0, spec.gyro_bias_stability, (count, 3))

    def sample(self, accel: np.ndarray, gyro: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measured (accel, gyro), each (count, 3), from exact specific force and angular rate."""
        rng = self.rng
        self._accel_drift = self._decay * self._accel_drift + self._drive * rng.normal(
            0.0, self.spec.accel_bias_stability, accel.shape)
        self._gyro_drift = self._decay * self._gyro_drift + self._drive * rng.normal(
            0.0, self.spec.gyro_bias_stability, gyro.shape)
        noise = rng.standard_normal((2,) + accel.shape)
        measured_accel = accel + self.accel_bias + self._accel_drift + self.accel_sigma * noise[0]
        measured_gyro = gyro + self.gyro_bias + self._gyro_drift + self.gyro_sigma * noise[1]
        return measured_accel, measured_gyro


# --- EMG -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmgSpec:
    """Surface EMG amplifier and signal figures.

    mvc_amplitude_mv: RMS of the raw EMG at maximal voluntary contraction. Surface EMG spans
        0-10 mV peak-to-peak, typically about 1 mV RMS at MVC for large leg muscles (De Luca
        1997, "The use of surface electromyography in biomechanics", J Appl Biomech 13:135-163).
    band_hz: the surface EMG power band, 20-450 Hz (De Luca et al. 2010, J Biomech
        43:1573-1579: recommended 20 Hz high-pass, 450 Hz low-pass).
    noise_mv: RMS baseline (amplifier + electrode) noise; a few microvolts for a modern
        amplifier with good skin preparation (De Luca 1997).
    hum_mv: amplitude of the mains-frequency interference picked up by the leads.
    artefact_mv_per_ms2: motion artefact per m/s^2 of segment acceleration change (model value).
    artefact_band_hz: motion artefacts lie below about 20 Hz (De Luca et al. 2010).
    """
    fs_hz: float = 2000.0
    mvc_amplitude_mv: float = 1.0
    band_hz: tuple = (20.0, 450.0)
    noise_mv: float = 0.005
    hum_mv: float = 0.02
    mains_hz: float = 50.0
    artefact_mv_per_ms2: float = 0.004
    artefact_band_hz: float = 15.0


NOISE_BLOCK_SAMPLES = 400


class EmgSynth:
    """Raw EMG of several channels from muscle activations, one batch at a time.

    The carrier is Gaussian noise band-limited to spec.band_hz (4th-order Butterworth band-pass,
    scaled to unit RMS), amplitude-modulated by the activation (interpolated linearly within the
    batch), plus white sensor noise, a mains hum line (random phase per channel) and a
    low-frequency motion artefact driven by the segment acceleration. Carrier, sensor noise
    and hum are drawn ahead in blocks (prepare()); each batch then only scales and adds them.
    """

    def __init__(self, channels: int, spec: EmgSpec, rng: np.random.Generator):
        self.spec = spec
        self.rng = rng
        self.channels = channels
        self._carrier_sos = signal.butter(4, spec.band_hz, btype='bandpass', fs=spec.fs_hz, output='sos')
        impulse = signal.sosfilt(self._carrier_sos, np.r_[1.0, np.zeros(int(spec.fs_hz))])
        self._carrier_gain = 1.0 / math.sqrt(float(np.sum(impulse ** 2)))
        self._carrier_state = np.zeros((self._carrier_sos.shape[0], 2, channels))
        self._artefact_sos = signal.butter(2, spec.artefact_band_hz, fs=spec.fs_hz, output='sos')
        self._artefact_state = np.zeros((self._artefact_sos.shape[0], 2, channels))
        self._hum_phase = rng.uniform(0.0, 2.0 * math.pi, channels)
        self._carrier_ahead = np.empty((0, channels))
        self._noise_ahead = np.empty((0, channels))
        self._drawn = 0
        self._last_activation = np.zeros(channels)
        self._last_artefact = np.zeros(channels)

    def prepare(self, count: int) -> None:
        """Draw and band-pass filter at least `count` samples of carrier and sensor noise ahead
        of need, in blocks of NOISE_BLOCK_SAMPLES: filtering is cheap per sample and costly per
        call, so a real-time caller does this in its spare time and generate() stays short."""
        if len(self._carrier_ahead) >= count:
            return
        spec = self.spec
        block = max(NOISE_BLOCK_SAMPLES, count)
        white = self.rng.standard_normal((2, block, self.channels))
        carrier, self._carrier_state = signal.sosfilt(
            self._carrier_sos, white[0], axis=0, zi=self._carrier_state)
        t = (self._drawn + np.arange(block))[:, None] / spec.fs_hz
        self._drawn += block
        hum = spec.hum_mv * np.sin(2.0 * math.pi * spec.mains_hz * t + self._hum_phase)
        self._carrier_ahead = np.concatenate((self._carrier_ahead, carrier))
        self._noise_ahead = np.concatenate((self._noise_ahead, spec.noise_mv * white[1] + hum))

    def generate(self, count: int, activation: np.ndarray, artefact_drive: np.ndarray) -> np.ndarray:
        """The next `count` samples (count, channels) in mV.

        Args:
            activation: activation 0..1 per channel at the end of the batch.
            artefact_drive: segment acceleration change (m/s^2) per channel at the end of the batch.
        """
        spec = self.spec
        ramp = (np.arange(1, count + 1) / count)[:, None]
        amplitude = self._last_activation + ramp * (activation - self._last_activation)
        drive = self._last_artefact + ramp * (artefact_drive - self._last_artefact)
        self._last_activation = activation.copy()
        self._last_artefact = artefact_drive.copy()

        self.prepare(count)
        carrier, self._carrier_ahead = self._carrier_ahead[:count], self._carrier_ahead[count:]
        noise, self._noise_ahead = self._noise_ahead[:count], self._noise_ahead[count:]  # sensor noise + hum
        artefact, self._artefact_state = signal.sosfilt(
            self._artefact_sos, drive, axis=0, zi=self._artefact_state)
        return (spec.mvc_amplitude_mv * self._carrier_gain * amplitude * carrier
                + noise + spec.artefact_mv_per_ms2 * artefact)
