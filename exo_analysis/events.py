"""Online gait events (heel strike, toe off) from one leg's sagittal gyroscope.

Method (plain Python, one sample at a time, no rclpy):

1. The sagittal angular velocity, signed so that the swing is positive, is low-pass filtered
   by a linear-phase FIR filter (windowed sinc, Hamming window, unit DC gain: the design of
   scipy.signal.firwin's defaults, computed here because importing scipy.signal takes
   seconds; test_analysis_events.py checks they agree). Its delay is exactly (taps - 1) / 2
   samples, so every filtered sample is stamped with the time of the sample at its centre:
   event times carry no filter lag, only the detection does.
2. Mid-swing is the large positive peak of the shank (or foot) angular velocity (Aminian et al.
   2002, J Biomech 35:689; Catalfamo et al. 2010, Sensors 10:5683): the signal must rise above
   an adaptive threshold (a fraction of the mean of the last swing peaks, never below a floor).
3. Toe off is the last local minimum before the rise into swing (Aminian 2002: the negative
   peak before mid-swing): the lowest point of the last descent, a descent being a fall of a
   tenth of the swing threshold after a hump, so the loading-response dip early in stance is
   passed over however shallow the mid-stance hump after it (a stiff knee), and noise smaller
   than that does not start one. It is published when the swing is recognised.
4. Heel strike is the first downward zero crossing after the mid-swing peak, linearly
   interpolated between samples, plus `heel_strike_delay` (a fraction of the last stride
   time). For foot-worn sensors the crossing is the contact itself (validated on the gaitmap
   recording in test_analysis_events.py: delay 0). For shank-worn sensors the shank stops
   rotating forward when the knee reaches terminal-swing extension, 2-3 % of the cycle before
   contact in the normative curves (Schwartz et al. 2008) - hence the configurable delay.
   Aminian's local-minimum rule was not used: on the foot recording it lands 40-60 ms late
   (the foot-flat rotation after contact), and on kinematics without an impact dip the first
   minimum comes only in the loading response.

A heel strike sooner than `min_stride_s` after the previous one, or a swing without a zero
crossing within `max_swing_s`, is rejected and counted (`rejected`), never published.
"""
from collections import deque
from dataclasses import dataclass, field
import math
from typing import Optional

import numpy as np

HEEL_STRIKE = 'heel_strike'
TOE_OFF = 'toe_off'
TOE_OFF_DESCENT_FRACTION = 0.1  # of the swing threshold: a fall this deep after a hump starts a new minimum


@dataclass(frozen=True)
class GaitEvent:
    leg: str
    kind: str        # HEEL_STRIKE or TOE_OFF
    time: float      # s, same clock as the input samples
    detected_at: float  # s, time of the sample whose arrival revealed the event


@dataclass
class DetectorConfig:
    """Tuning of the detector (gait_analyzer parameters `events.*`).

    Args:
        sample_rate_hz: nominal gyroscope rate, for the filter design.
        cutoff_hz: low-pass cut-off.
        taps: FIR length (odd); delay is (taps - 1) / 2 samples.
        swing_threshold_floor: rad/s, the smallest swing peak accepted.
        swing_threshold_fraction: adaptive threshold as a fraction of recent swing peaks.
        heel_strike_delay_fraction: added to the zero crossing, fraction of the last stride.
        min_stride_s, max_swing_s: plausibility limits.
    """
    sample_rate_hz: float = 200.0
    cutoff_hz: float = 15.0
    taps: int = 11
    swing_threshold_floor: float = math.radians(40.0)
    swing_threshold_fraction: float = 0.3
    heel_strike_delay_fraction: float = 0.0
    min_stride_s: float = 0.5
    max_swing_s: float = 1.5


@dataclass
class DetectorCounters:
    samples: int = 0
    heel_strikes: int = 0
    toe_offs: int = 0
    rejected: dict = field(default_factory=lambda: {'too_soon': 0, 'swing_timeout': 0})


def lowpass_taps(taps: int, cutoff_hz: float, sample_rate_hz: float) -> list[float]:
    """Linear-phase low-pass FIR: Hamming-windowed sinc normalised to unit gain at DC."""
    centre = np.arange(taps) - (taps - 1) / 2.0
    cutoff = 2.0 * cutoff_hz / sample_rate_hz  # fraction of Nyquist
    coefficients = cutoff * np.sinc(cutoff * centre) * np.hamming(taps)
    return [float(x) for x in coefficients / coefficients.sum()]


class GyroEventDetector:
    """Streaming heel-strike / toe-off detector for one leg.

    Args:
        leg: 'left' or 'right', copied into the events.
        config: DetectorConfig.
    """

    def __init__(self, leg: str, config: DetectorConfig = DetectorConfig()):
        if config.taps % 2 == 0 or config.taps < 3:
            raise ValueError(f'events.taps must be odd and >= 3, got {config.taps}')
        self.leg = leg
        self.config = config
        self._taps = lowpass_taps(config.taps, config.cutoff_hz, config.sample_rate_hz)
        self._raw = deque([0.0] * config.taps, maxlen=config.taps)
        self._times = deque([0.0] * config.taps, maxlen=config.taps)
        self._filled = 0
        self.counters = DetectorCounters()
        self._in_swing = False
        self._previous: Optional[tuple[float, float]] = None  # last filtered (time, value)
        self._min_value = math.inf
        self._min_time = math.nan
        self._hump = -math.inf  # highest value since the current minimum
        self._peak_value = 0.0
        self._swing_start = math.nan
        self._recent_peaks: deque = deque(maxlen=3)
        self.last_heel_strike = math.nan
        self.last_stride_time = math.nan

    def reset(self) -> None:
        """Forget the signal history (after a gap in the data); the counters stay."""
        counters = self.counters
        self.__init__(self.leg, self.config)
        self.counters = counters

    @property
    def swing_threshold(self) -> float:
        adaptive = 0.0
        if self._recent_peaks:
            adaptive = self.config.swing_threshold_fraction * sum(self._recent_peaks) / len(self._recent_peaks)
        return max(self.config.swing_threshold_floor, adaptive)

    def add(self, time: float, swing_positive_rate: float) -> list[GaitEvent]:
        """Feed one sample; returns the events it revealed (usually none).

        Args:
            time: sample time in s (increasing).
            swing_positive_rate: sagittal angular velocity in rad/s, positive in swing.
        """
        self._raw.append(swing_positive_rate)
        self._times.append(time)
        self.counters.samples += 1
        if self._filled < self.config.taps:
            self._filled += 1
            if self._filled < self.config.taps:
                return []
        value = sum(map(float.__mul__, self._taps, self._raw))
        centre_time = self._times[self.config.taps // 2]
        events = self._step(centre_time, value, time)
        self._previous = (centre_time, value)
        return events

    def _step(self, t: float, y: float, now: float) -> list[GaitEvent]:
        events = []
        if not self._in_swing:
            threshold = self.swing_threshold
            descent = TOE_OFF_DESCENT_FRACTION * threshold
            if y < self._min_value:
                self._min_value, self._min_time, self._hump = y, t, y
            elif y > self._hump:
                self._hump = y
            elif y < self._hump - descent and self._hump > self._min_value + descent:
                # falling again after a hump: the minimum of this descent is the later one
                self._min_value, self._min_time, self._hump = y, t, y
            if y > threshold:
                self._in_swing = True
                self._peak_value = y
                self._swing_start = t
                if math.isfinite(self._min_time):
                    self.counters.toe_offs += 1
                    events.append(GaitEvent(self.leg, TOE_OFF, self._min_time, now))
            return events
        self._peak_value = max(self._peak_value, y)
        if t - self._swing_start > self.config.max_swing_s:
            self.counters.rejected['swing_timeout'] += 1
            self._end_swing()
            return events
        previous = self._previous
        if previous is not None and previous[1] > 0.0 >= y:
            t0, y0 = previous
            crossing = t0 + (t - t0) * y0 / (y0 - y)
            delay = 0.0
            if math.isfinite(self.last_stride_time):
                delay = self.config.heel_strike_delay_fraction * self.last_stride_time
            strike = crossing + delay
            self._recent_peaks.append(self._peak_value)
            self._end_swing()
            since_last = strike - self.last_heel_strike
            if math.isfinite(since_last) and since_last < self.config.min_stride_s:
                self.counters.rejected['too_soon'] += 1
                return events
            if math.isfinite(since_last) and since_last < 3.0 * self.config.max_swing_s:
                self.last_stride_time = since_last
            self.last_heel_strike = strike
            self.counters.heel_strikes += 1
            events.append(GaitEvent(self.leg, HEEL_STRIKE, strike, now))
        return events

    def _end_swing(self) -> None:
        self._in_swing = False
        self._min_value = math.inf
        self._min_time = math.nan
        self._hump = -math.inf


def match_events(detected: list[float], reference: list[float], tolerance: float) -> dict:
    """Compare detected with reference event times (both s), one-to-one, nearest first.

    Returns:
        dict with matched pairs' signed errors (detected - reference), the number of
        references missed and of detections matching no reference (false detections).
    """
    pairs = sorted(((abs(d - r), i, j) for i, d in enumerate(detected)
                    for j, r in enumerate(reference) if abs(d - r) <= tolerance))
    used_detected, used_reference, errors = set(), set(), []
    for _, i, j in pairs:
        if i in used_detected or j in used_reference:
            continue
        used_detected.add(i)
        used_reference.add(j)
        errors.append(detected[i] - reference[j])
    return {'errors': errors, 'missed': len(reference) - len(used_reference),
            'false': len(detected) - len(used_detected), 'reference': len(reference),
            'detected': len(detected)}
