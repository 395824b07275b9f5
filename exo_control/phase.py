"""Gait-phase estimation: time-based (guidance) and from the patient's own hip motion (cooperative).

Phase is in cycles, 0 at the leg's heel strike, wrapping at 1.

HipCrossingPhase is event-based: the hip (thigh) angle crosses the middle of its range twice
per stride, sharply; the reference hip curve says at which phases; between crossings the phase
advances at the measured stride rate, and a first-order loop blends corrections in. A
thigh-angle phase portrait (Villarreal et al. 2016, IEEE TNSRE 24:265) was tried first: in the
simulator it gave 7-9 % RMS phase error, because the patient's hip curve differs in shape from
the reference; crossing times are insensitive to that.
"""
import math

import numpy as np

_TWO_PI = 2.0 * math.pi
# The loop's pull on the output phase is bounded to this fraction of the stride rate: catching
# up a large phase difference at full loop gain would run the reference (and the legs) at up
# to twice the pattern's joint speeds, beyond the drives' velocity limits.
MAX_PULL = 0.25
# Measured stride rates are believed only within this band around the belt's cadence.
RATE_BAND = (0.7, 1.4)


def clamp(x: float, bound: float) -> float:
    """x limited to -bound .. bound."""
    return bound if x > bound else (-bound if x < -bound else x)


def wrap_half(x: float) -> float:
    """x wrapped into [-0.5, 0.5) cycles."""
    return (x + 0.5) % 1.0 - 0.5


class TimePhase:
    """Phase advancing at a given stride rate (the Lokomat's guidance timing)."""

    def __init__(self, phase: float = 0.0):
        self.phase = phase % 1.0

    def advance(self, rate_hz: float, dt: float) -> float:
        self.phase = (self.phase + rate_hz * dt) % 1.0
        return self.phase


class HipCrossingPhase:
    """One leg's phase from the times its hip angle crosses the middle of its range.

    Twice per stride the hip angle crosses the centre of its range (downward in stance,
    upward in swing), steeply, so the crossing times are sharp and insensitive to amplitude.
    The reference hip curve says at which phases those crossings happen; between crossings the
    phase advances at the measured stride rate (mean interval between same-direction crossings).
    A first-order loop pulls the output toward that estimate, so corrections never step.

    Args:
        reference_hip: the reference hip curve over one cycle (k / n, k = 0..n, rad).
        rate_hz: initial stride rate (strides per second).
        loop_bandwidth_hz: how fast the output follows corrections at the crossings.
        hysteresis: fraction of the hip amplitude a crossing must pass to count (noise immunity).
        cadence_prior: pull of the rate toward `nominal_rate` at each crossing (0..1). The hip
            of a passive leg moves at the rate the exo drives it, so without a prior the rate
            measured from it has nothing to return to and drifts; on a treadmill the belt speed
            and the pattern's stride length fix the cadence (nominal_rate), which anchors it.
    """

    def __init__(self, reference_hip, rate_hz: float, loop_bandwidth_hz: float = 1.0,
                 hysteresis: float = 0.15, min_rate_hz: float = 0.1, max_rate_hz: float = 2.0,
                 cadence_prior: float = 0.0):
        self.set_bandwidth(loop_bandwidth_hz)
        self.nominal_rate = rate_hz
        self.cadence_prior = cadence_prior
        self.hysteresis = hysteresis
        self.min_rate_hz = min_rate_hz
        self.max_rate_hz = max_rate_hz
        self.rate = rate_hz
        self.phase = 0.0
        self.raw_phase = 0.0
        self.time = 0.0
        self.calibrate(reference_hip, normalisation=True)
        self._side = 0            # +1 above centre + hysteresis, -1 below centre - hysteresis
        self._last_centre_cross = 0.0
        self._previous_above = None
        self._anchor = None       # (time, phase) of the last accepted crossing
        self._last_event = {}     # direction -> time of the last crossing
        self._low = math.inf
        self._high = -math.inf

    def set_nominal_rate(self, rate_hz: float) -> None:
        """A new cadence implied by the belt: the estimated rate shifts with it at once.

        Crossings only correct the rate once the hip moves; when the belt starts from standstill
        the cadence it sets must carry over immediately, or the reference would hold a standing
        leg against a patient who has started to walk. The measured deviation from the nominal
        cadence is kept (as a difference: a ratio would blow up a deviation measured near
        standstill).
        """
        if rate_hz != self.nominal_rate:
            rate = self.rate + rate_hz - self.nominal_rate
            self.nominal_rate = rate_hz
            low, high = self._rate_band()
            self.rate = min(high, max(low, rate))

    def _rate_band(self) -> tuple[float, float]:
        """Plausible stride rates: within RATE_BAND of the belt's cadence and the absolute bounds.

        On a treadmill speed = step length x cadence, so the cadence cannot stray far from the
        belt's; a hip that crosses its centre twice per half stride (a leg fighting the exo, a
        stumble) would otherwise double the estimate, and a stiff exo would then drive the legs
        at that rate.
        """
        nominal = self.nominal_rate
        return (max(self.min_rate_hz, RATE_BAND[0] * nominal),
                min(self.max_rate_hz, max(self.min_rate_hz, RATE_BAND[1] * nominal)))

    def set_bandwidth(self, loop_bandwidth_hz: float) -> None:
        self.gain = _TWO_PI * loop_bandwidth_hz

    def calibrate(self, reference_hip, normalisation: bool) -> None:
        """Crossing phases from a reference hip curve (and optionally restart the normalisation)."""
        curve = np.asarray(reference_hip, dtype=float)
        centre = 0.5 * (curve.max() + curve.min())
        if normalisation:
            self.centre = centre
            self.amplitude = 0.5 * (curve.max() - curve.min())
            self._min_amplitude = 0.2 * self.amplitude
        phase = np.linspace(0.0, 1.0, len(curve))
        above = curve > centre
        self.event_phase = {}
        for direction, change in ((-1, above[:-1] & ~above[1:]), (1, ~above[:-1] & above[1:])):
            k = int(np.flatnonzero(change)[0])
            fraction = (curve[k] - centre) / (curve[k] - curve[k + 1])
            self.event_phase[direction] = float(phase[k] + fraction * (phase[k + 1] - phase[k]))

    @property
    def locked(self) -> bool:
        """True once a crossing has anchored the phase."""
        return self._anchor is not None

    def reset(self, phase: float, rate_hz: float) -> None:
        self.phase = phase % 1.0
        self.rate = rate_hz
        self._anchor = None
        self._last_event = {}

    def update(self, hip: float, hip_velocity: float, dt: float) -> float:
        """Advance by dt with a new hip angle (rad); returns the estimated phase.

        hip_velocity is not needed (kept for a uniform estimator interface).
        """
        self.time += dt
        now = self.time
        if hip < self._low:
            self._low = hip
        if hip > self._high:
            self._high = hip
        above = hip > self.centre
        if above != self._previous_above:
            self._last_centre_cross = now
            self._previous_above = above
        band = self.hysteresis * self.amplitude
        side = 1 if hip > self.centre + band else (-1 if hip < self.centre - band else self._side)
        if side != self._side:
            if self._side != 0:
                self._crossing(side, self._last_centre_cross)
            self._side = side
        if self._anchor is None:
            raw = self.phase + self.rate * dt
        else:
            raw = self._anchor[1] + (now - self._anchor[0]) * self.rate
        self.raw_phase = raw % 1.0
        pull = clamp(self.gain * wrap_half(raw - self.phase), MAX_PULL * self.rate)
        self.phase = (self.phase + (self.rate + pull) * dt) % 1.0
        return self.phase

    def _crossing(self, direction: int, when: float) -> None:
        previous = self._last_event.get(direction)
        self._last_event[direction] = when
        if previous is not None:
            measured = 1.0 / (when - previous)
            low, high = self._rate_band()
            if low <= measured <= high:
                self.rate += 0.5 * (measured - self.rate)
            self.rate += self.cadence_prior * (self.nominal_rate - self.rate)
        # The output is never set here, only pulled by the loop: a jump of the phase would step
        # the reference (and the torque) at the first crossing.
        self._anchor = (when, self.event_phase[direction])
        if direction == 1:
            self._new_stride()

    def _new_stride(self) -> None:
        if self._high > self._low:
            amplitude = 0.5 * (self._high - self._low)
            if amplitude > self._min_amplitude:
                self.centre += 0.5 * (0.5 * (self._high + self._low) - self.centre)
                self.amplitude += 0.5 * (amplitude - self.amplitude)
        self._low = math.inf
        self._high = -math.inf


def leg_phases_from_left(left_phase: float) -> tuple[float, float]:
    """(left, right) phases when the right leg runs half a cycle behind the left."""
    return left_phase, (left_phase - 0.5) % 1.0



