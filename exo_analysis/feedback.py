"""Live cues a patient can act on, and therapist goals with progress (plain Python).

Cues come from each completed stride compared with the healthy reference at the current speed
(exo_common.normative) and with the patient's own start of the session. Each cue has a stable
machine-readable code '<what>.<leg>' (or 'goal_reached.<goal>'), a priority (higher first)
and a short sentence:

| code                     | priority | when (persisting for `persistence_strides` strides)          |
|--------------------------|----------|---------------------------------------------------------------|
| goal_reached.<goal>      | 5        | the goal's rolling value reaches the target (once)            |
| knee_flexion_low.<leg>   | 4        | swing peak knee flexion < normative peak - margin (trip risk) |
| toe_lift_low.<leg>       | 4        | swing peak dorsiflexion < normative peak - margin             |
| heel_strike_late.<leg>   | 3        | step time exceeds half the stride by > timing tolerance       |
| step_length_short.<leg>  | 2        | step length < normative * (1 - tolerance)                     |
| step_length_gain.<leg>   | 1        | praise: rolling step length >= session baseline + gain        |

At most one cue every `min_interval_s`; the same code not again within `repeat_interval_s`;
among the cues due, the highest priority wins (ties: the larger relative deviation).
"""
from collections import deque
from dataclasses import dataclass
import math
from typing import Optional

import numpy as np

from exo_common import normative
from exo_analysis.metrics import StrideMetrics

CORRECTION = 'correction'
PRAISE = 'praise'


@dataclass(frozen=True)
class Cue:
    code: str
    priority: int
    text: str
    kind: str           # CORRECTION or PRAISE
    leg: str = ''
    value: float = math.nan
    target: float = math.nan
    unit: str = ''
    severity: float = 0.0  # relative size of the deviation, for ties


@dataclass
class FeedbackConfig:
    min_interval_s: float = 4.0
    repeat_interval_s: float = 15.0
    persistence_strides: int = 2
    timing_tolerance_fraction: float = 0.08
    step_length_tolerance_fraction: float = 0.15
    joint_margin_deg: float = 8.0
    praise_step_gain_m: float = 0.03
    baseline_strides: int = 5
    height_m: float = 1.75


GOAL_DIRECTIONS = {  # +1: higher is better, -1: lower is better
    'step_length_m': +1, 'cadence_spm': +1, 'knee_swing_flexion_deg': +1,
    'step_length_symmetry_percent': -1,
}
GOAL_LABELS = {
    'step_length_m': ('step length', 'm'), 'cadence_spm': ('cadence', 'steps/min'),
    'knee_swing_flexion_deg': ('knee flexion in swing', 'deg'),
    'step_length_symmetry_percent': ('step length asymmetry', '%'),
}


@dataclass
class GoalProgress:
    name: str
    target: float
    current: float
    best: float
    progress_percent: float
    reached: bool


class GoalTracker:
    """Rolling values over the last `window` strides against targets (0 or less = no goal)."""

    def __init__(self, targets: dict, window: int = 6):
        self.targets = {k: v for k, v in targets.items() if v > 0.0}
        self._values = {name: deque(maxlen=window) for name in GOAL_DIRECTIONS}
        self._best: dict = {}
        self._announced: set = set()

    def set_targets(self, targets: dict) -> None:
        for name, value in targets.items():
            if value > 0.0:
                self.targets[name] = value
            else:
                self.targets.pop(name, None)
            self._announced.discard(name)

    def add(self, name: str, value: float) -> None:
        if math.isfinite(value):
            self._values[name].append(abs(value) if GOAL_DIRECTIONS[name] < 0 else value)

    def progress(self) -> list[GoalProgress]:
        result = []
        for name, target in self.targets.items():
            values = self._values[name]
            if not values:
                continue
            current = float(np.mean(values))
            direction = GOAL_DIRECTIONS[name]
            best = self._best.get(name, current)
            best = max(best, current) if direction > 0 else min(best, current)
            self._best[name] = best
            if direction > 0:
                percent = current / target * 100.0
            else:
                percent = 100.0 if current <= target else target / current * 100.0
            result.append(GoalProgress(name, target, current, best, percent, percent >= 100.0))
        return result

    def newly_reached(self, progress: list[GoalProgress]) -> list[GoalProgress]:
        reached = [p for p in progress if p.reached and p.name not in self._announced]
        self._announced.update(p.name for p in reached)
        return reached


def _swing_peaks(speed_mps: float, height_m: float, stance_fraction: float) -> tuple[float, float]:
    """Normative peak knee flexion and ankle dorsiflexion in swing (deg)."""
    mean, _ = normative.joint_curves(speed_mps, height_m)
    swing = normative.phase_grid() >= stance_fraction
    return float(np.degrees(mean[1][swing].max())), float(np.degrees(mean[2][swing].max()))


class FeedbackEngine:
    """Turns strides into at most one cue at a time.

    Args:
        config: FeedbackConfig (gait_analyzer parameters `feedback.*`).
    """

    def __init__(self, config: FeedbackConfig = FeedbackConfig()):
        self.config = config
        self._streak: dict[str, int] = {}
        self._last_said: dict[str, float] = {}
        self._last_cue_time = -math.inf
        self._baseline = {leg: [] for leg in ('left', 'right')}
        self._recent_steps = {leg: deque(maxlen=3) for leg in ('left', 'right')}
        self._pending: dict[str, Cue] = {}

    def candidates(self, stride: StrideMetrics) -> list[Cue]:
        """Cues this stride supports (before persistence and rate limits)."""
        cues = []
        leg, cfg = stride.leg, self.config
        speed = stride.speed_mps
        if math.isfinite(speed) and speed > 0.0:
            knee_peak, ankle_peak = _swing_peaks(speed, cfg.height_m, normative.stance_fraction())
            deficit = knee_peak - cfg.joint_margin_deg - stride.swing_knee_flexion_deg
            if deficit > 0.0:
                cues.append(Cue(f'knee_flexion_low.{leg}', 4, f'bend your {leg} knee more in swing',
                                CORRECTION, leg, stride.swing_knee_flexion_deg, knee_peak, 'deg',
                                deficit / knee_peak))
            deficit = ankle_peak - cfg.joint_margin_deg - stride.swing_ankle_dorsiflexion_deg
            if deficit > 0.0:
                cues.append(Cue(f'toe_lift_low.{leg}', 4, f'lift your {leg} toes in swing',
                                CORRECTION, leg, stride.swing_ankle_dorsiflexion_deg, ankle_peak, 'deg',
                                deficit / max(abs(ankle_peak), cfg.joint_margin_deg)))
            expected_step = normative.step_length_m(speed, cfg.height_m)
            if stride.step_length_m < expected_step * (1.0 - cfg.step_length_tolerance_fraction):
                cues.append(Cue(f'step_length_short.{leg}', 2,
                                f'take a longer step with your {leg} leg '
                                f'({stride.step_length_m * 100:.0f} cm, aim {expected_step * 100:.0f} cm)',
                                CORRECTION, leg, stride.step_length_m, expected_step, 'm',
                                1.0 - stride.step_length_m / expected_step))
        late = stride.step_time_s - stride.stride_time_s / 2.0
        if late > cfg.timing_tolerance_fraction * stride.stride_time_s:
            cues.append(Cue(f'heel_strike_late.{leg}', 3, f'{leg} heel strike late by {late:.2f} s',
                            CORRECTION, leg, late, 0.0, 's', late / stride.stride_time_s))
        cues.extend(self._praise(stride))
        return cues

    def _praise(self, stride: StrideMetrics) -> list[Cue]:
        leg, step = stride.leg, stride.step_length_m
        if not math.isfinite(step):
            return []
        baseline = self._baseline[leg]
        if len(baseline) < self.config.baseline_strides:
            baseline.append(step)
            return []
        recent = self._recent_steps[leg]
        recent.append(step)
        gain = float(np.mean(recent)) - float(np.mean(baseline))
        if len(recent) == recent.maxlen and gain >= self.config.praise_step_gain_m:
            return [Cue(f'step_length_gain.{leg}', 1, f'good: {leg} step length +{gain * 100:.0f} cm',
                        PRAISE, leg, float(np.mean(recent)), float(np.mean(baseline)), 'm', gain)]
        return []

    def update(self, stride: StrideMetrics, now: float, extra: Optional[list[Cue]] = None) -> Optional[Cue]:
        """Feed a stride (and cues from elsewhere, e.g. goals); return the cue to show now, if any.

        Args:
            stride: the completed stride.
            now: current time (s, same clock as the strides).
            extra: cues not subject to persistence (goal reached).
        """
        found = {cue.code: cue for cue in self.candidates(stride)}
        for code in [c for c in self._streak if c.endswith('.' + stride.leg)]:
            if code not in found:
                self._streak.pop(code)
                self._pending.pop(code, None)
        for code, cue in found.items():
            self._streak[code] = self._streak.get(code, 0) + 1
            if cue.kind == PRAISE or self._streak[code] >= self.config.persistence_strides:
                self._pending[code] = cue
        for cue in extra or ():
            self._pending[cue.code] = cue
        if now - self._last_cue_time < self.config.min_interval_s:
            return None
        due = [cue for code, cue in self._pending.items()
               if now - self._last_said.get(code, -math.inf) >= self.config.repeat_interval_s]
        if not due:
            return None
        chosen = max(due, key=lambda cue: (cue.priority, cue.severity))
        self._pending.pop(chosen.code)
        self._last_said[chosen.code] = now
        self._last_cue_time = now
        return chosen


def goal_cue(progress: GoalProgress) -> Cue:
    label, unit = GOAL_LABELS[progress.name]
    return Cue(f'goal_reached.{progress.name}', 5,
               f'goal reached: {label} {progress.current:.2f} {unit}', PRAISE,
               value=progress.current, target=progress.target, unit=unit, severity=1.0)
