"""Assistance levels: assist-as-needed adaptation and EMG yielding.

Assist-as-needed follows Emken et al. (2007), "Motor adaptation as a greedy optimization of
error and effort", J Neurophysiol 97:3997: robot help on the next stride is the help on this
stride times a forgetting factor plus a gain times the error, u[i+1] = f u[i] + g e[i]. Here
the adapted quantity is the assistance level (fraction of full guidance stiffness) per joint
and per phase bin, e is the mean absolute tracking error in that bin beyond a deadband, and
the result is clipped to [0, the therapist's upper bound for that leg]. With f < 1 help fades
wherever the patient tracks well, and grows where the error exceeds the deadband.

EMG-gated forgetting (our design, an extension of Emken et al. 2007 in the spirit of EMG-driven
assist-as-needed, not a published rule): good tracking alone does not show that the patient can
do without help, since a passive leg guided along the pattern tracks it well too. So when EMG is
available, forgetting applies to a bin only in proportion to the share of its samples in which
the joint's agonists were active (above the activation threshold inside their normative
on-window, the same test as EMG yielding): u[i+1] = (1 - (1 - f) w) u[i] + g e[i], w in 0..1.
Where the patient shows no voluntary activity (w = 0) help is kept; the error-driven increase
always applies. Bins observed without usable EMG (absent, stale, faulty, or the gate switched
off) use the plain rule (w = 1).

EMG yielding: when a muscle that drives a joint is active during its normal on-window
(exo_common.normative.emg_windows), the patient is producing the movement: that joint's
assistance is reduced in proportion to the activation above a threshold.
"""
import math
from typing import Optional, Sequence

from exo_common import normative
from exo_common.joints import EMG_CHANNELS, EMG_MUSCLES, JOINTS_PER_LEG, LEGS

# Muscles whose activity shows the patient's own effort at each joint (agonists in gait):
# rectus femoris flexes the hip and extends the knee, biceps femoris extends the hip and flexes
# the knee, tibialis anterior dorsiflexes and gastrocnemius plantarflexes the ankle.
JOINT_MUSCLES = {
    'hip': ('rectus_femoris', 'biceps_femoris'),
    'knee': ('rectus_femoris', 'biceps_femoris', 'gastrocnemius'),
    'ankle': ('tibialis_anterior', 'gastrocnemius'),
}


class AssistAsNeeded:
    """Per joint, per phase bin assistance level in [0, bound] adapted once per stride and bin.

    Args:
        bins: phase bins per cycle.
        gain: assistance increase per rad of mean error above the deadband (1/rad).
        forgetting: factor applied per stride and bin (0 < f <= 1).
        deadband: error (rad) below which the error does not add assistance.
        bounds: upper bound per joint (0..1), the therapist's setting for that joint's leg.
        emg_gated: forgetting only where EMG shows voluntary activity (see the module text);
            samples observed without EMG information always use the plain rule.
    """

    def __init__(self, bins: int, gain: float, forgetting: float, deadband: float,
                 bounds: Sequence[float], emg_gated: bool = False):
        self.bins = bins
        self.gain = gain
        self.forgetting = forgetting
        self.deadband = deadband
        self.emg_gated = emg_gated
        self.bounds = list(bounds)
        self.levels = [[bound] * bins for bound in self.bounds]
        self.discard_partial()

    def set_bounds(self, bounds: Sequence[float]) -> None:
        """New upper bounds; levels above a lowered bound are clipped to it."""
        self.bounds = list(bounds)
        for levels, bound in zip(self.levels, self.bounds):
            for b, level in enumerate(levels):
                if level > bound:
                    levels[b] = bound

    def reset(self, to_bound: bool = True) -> None:
        for j, bound in enumerate(self.bounds):
            self.levels[j] = [bound if to_bound else 0.0] * self.bins
        self.discard_partial()

    def discard_partial(self) -> None:
        """Forget the error gathered in the current bins (e.g. while torque was off)."""
        n = len(self.bounds)
        self._sum = [0.0] * n
        self._count = [0] * n
        self._silent = [0] * n  # samples with usable EMG showing no voluntary activity
        self._bin = [-1] * n

    def level(self, joint: int, phase: float) -> float:
        return self.levels[joint][int(phase * self.bins) % self.bins]

    def observe(self, joint: int, phase: float, abs_error: float, active: Optional[bool] = None) -> float:
        """Accumulate one error sample; returns the level of the bin the phase is in.

        Leaving a bin updates that bin with the mean error gathered while in it.

        Args:
            active: whether EMG shows the joint's own voluntary activity now; None when no
                usable EMG is available (the sample then counts as plain Emken).
        """
        b = int(phase * self.bins) % self.bins
        if b != self._bin[joint]:
            count = self._count[joint]
            if count:
                self._update(joint, self._bin[joint], self._sum[joint] / count,
                             1.0 - self._silent[joint] / count)
            self._bin[joint] = b
            self._sum[joint] = 0.0
            self._count[joint] = 0
            self._silent[joint] = 0
        self._sum[joint] += abs_error
        self._count[joint] += 1
        if active is False:
            self._silent[joint] += 1
        return self.levels[joint][b]

    def _update(self, joint: int, b: int, mean_error: float, active_share: float = 1.0) -> None:
        excess = mean_error - self.deadband
        forgetting = self.forgetting
        if self.emg_gated:
            forgetting = 1.0 - (1.0 - forgetting) * active_share
        level = forgetting * self.levels[joint][b] + self.gain * (excess if excess > 0.0 else 0.0)
        bound = self.bounds[joint]
        self.levels[joint][b] = bound if level > bound else (0.0 if level < 0.0 else level)

    def joint_means(self) -> list[float]:
        return [sum(levels) / self.bins for levels in self.levels]


def _in_windows(phase: float, windows, margin: float) -> bool:
    for start, end in windows:
        if start - margin <= phase <= end + margin:
            return True
        if start - margin < 0.0 and phase >= 1.0 + start - margin:
            return True
        if end + margin > 1.0 and phase <= end + margin - 1.0:
            return True
    return False


class EmgYield:
    """Factor (0..1) per joint multiplying assistance when the patient's own muscles work.

    Args:
        threshold: activation (fraction of MVC) below which a muscle counts as silent.
        full: activation at which the yield reaches max_yield.
        max_yield: largest reduction of assistance (0..1).
        window_margin: tolerance around the normative on-windows, in cycles.
    """

    def __init__(self, threshold: float, full: float, max_yield: float, window_margin: float = 0.05):
        self.threshold = threshold
        self.full = full
        self.max_yield = max_yield
        self.window_margin = window_margin
        windows = normative.emg_windows()
        channel_index = {name: i for i, name in enumerate(EMG_CHANNELS)}
        # per joint (JOINT_NAMES order): [(channel index, on-windows), ...]
        self._sources = [[(channel_index[f'{leg}_{muscle}'], windows[muscle]) for muscle in JOINT_MUSCLES[joint]]
                         for leg in LEGS for joint in JOINTS_PER_LEG]
        # per joint: all muscles of its leg, the evidence of activity where none of its own is on
        self._leg_sources = [[(channel_index[f'{leg}_{muscle}'], windows[muscle]) for muscle in EMG_MUSCLES]
                             for leg in LEGS for _ in JOINTS_PER_LEG]

    def efforts(self, activations: Sequence[float], phases: Sequence[float]) -> list[float]:
        """Voluntary effort per joint: the largest (activation - threshold) / (full - threshold)
        of its muscles inside their on-windows; > 0 means the patient's own activity.

        Args:
            activations: per EMG_CHANNELS, fraction of MVC.
            phases: (left, right) gait phase.
        """
        span = self.full - self.threshold
        result = []
        for joint, sources in enumerate(self._sources):
            phase = phases[joint // len(JOINTS_PER_LEG)]
            effort = 0.0
            for channel, windows in sources:
                if _in_windows(phase, windows, self.window_margin):
                    level = (activations[channel] - self.threshold) / span
                    if level > effort:
                        effort = level
            result.append(effort)
        return result

    def active(self, activations: Sequence[float], phases: Sequence[float]) -> list[bool]:
        """Whether each joint shows voluntary activity: one of its muscles above the threshold
        inside its on-window, or, at a phase where none of its muscles has a window (the
        montage has no hip muscle for mid-stance), any muscle of the same leg in its window.

        Args: as efforts().
        """
        threshold = self.threshold
        result = []
        for joint, sources in enumerate(self._sources):
            phase = phases[joint // len(JOINTS_PER_LEG)]
            in_window = [channel for channel, windows in sources if _in_windows(phase, windows, self.window_margin)]
            if not in_window:
                in_window = [channel for channel, windows in self._leg_sources[joint]
                             if _in_windows(phase, windows, self.window_margin)]
            result.append(any(activations[channel] > threshold for channel in in_window))
        return result

    def factors(self, activations: Sequence[float], phases: Sequence[float]) -> list[float]:
        """Yield factor per joint (arguments as efforts())."""
        return [1.0 - self.max_yield * min(1.0, effort) for effort in self.efforts(activations, phases)]


def finite_activations(activations: Sequence[float]) -> bool:
    return all(math.isfinite(a) and 0.0 <= a <= 2.0 for a in activations)
