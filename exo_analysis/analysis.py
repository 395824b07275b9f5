"""The whole online analysis as one streaming object, shared by gait_analyzer and the reports.

Feed it shank gyroscope samples, joint angles, requested torques and the treadmill speed in
time order (each stream increasing in time); it returns gait events and completed strides
(metrics, symmetry, goals, the cue to show). No rclpy here: the node and the offline report
run exactly the same code, so a report shows what the patient was told.
"""
import bisect
from collections import deque
from dataclasses import dataclass, field
import math
from typing import Optional

import numpy as np

from exo_common.joints import LEGS
from exo_analysis import kinematics
from exo_analysis.events import HEEL_STRIKE, TOE_OFF, DetectorConfig, GaitEvent, GyroEventDetector
from exo_analysis.feedback import Cue, FeedbackConfig, FeedbackEngine, GoalProgress, GoalTracker, goal_cue
from exo_analysis.metrics import StrideMetrics, stride_metrics, symmetry_index

BUFFER_SECONDS = 6.0        # joint history kept: longer than any accepted stride
STRIDE_WAIT_SECONDS = 1.0   # how long a finished stride waits for joint data before going without
SYMMETRY_KEYS = ('step_length_m', 'step_time_s', 'stance_percent', 'swing_percent', 'stride_time_s')


@dataclass
class StrideResult:
    stride: StrideMetrics
    symmetry_percent: dict = field(default_factory=dict)  # metric -> SI (%), left vs right
    goals: list = field(default_factory=list)             # GoalProgress
    cue: Optional[Cue] = None


@dataclass
class AnalysisConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    goals: dict = field(default_factory=dict)
    goal_window_strides: int = 6
    height_m: float = 1.75
    pelvis: str = 'upright'  # normative.measured_band: what the hip encoder reads against
    joint_sample_period_s: float = 0.01
    speed_timeout_s: float = 1.0
    gap_s: float = 0.25


class _History:
    """Time-stamped samples at a reduced rate in a bounded deque."""

    def __init__(self, period: float, seconds: float):
        self.period = period
        self.samples: deque = deque(maxlen=int(seconds / period) + 1)
        self.latest = -math.inf

    def add(self, time: float, values) -> bool:
        if time - self.latest < self.period:
            return False
        self.latest = time
        self.samples.append((time, values))
        return True

    def window(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples from the last one at or before start to the first one at or after end."""
        samples = list(self.samples)
        times = [t for t, _ in samples]
        first = max(bisect.bisect_right(times, start) - 1, 0)
        last = bisect.bisect_left(times, end) + 1
        chosen = samples[first:last]
        if not chosen:
            return np.empty(0), np.empty((0, 0))
        times = np.fromiter((t for t, _ in chosen), float, len(chosen))
        return times, np.asarray([v for _, v in chosen], dtype=float)


class GaitAnalysis:
    """Streaming gait analysis for both legs.

    Args:
        config: AnalysisConfig.
        segments: leg -> kinematics.LegSegments (from the URDF); None: no step length.
    """

    def __init__(self, config: AnalysisConfig, segments: Optional[dict] = None):
        self.config = config
        self.segments = segments
        self.detectors = {leg: GyroEventDetector(leg, config.detector) for leg in LEGS}
        self.feedback = FeedbackEngine(config.feedback)
        self.goals = GoalTracker(config.goals, config.goal_window_strides)
        self._joints = _History(config.joint_sample_period_s, BUFFER_SECONDS)
        self._efforts = _History(config.joint_sample_period_s, BUFFER_SECONDS)
        self._events = {(leg, kind): deque(maxlen=4) for leg in LEGS for kind in (HEEL_STRIKE, TOE_OFF)}
        self._pending: deque = deque()
        self._last_stride: dict[str, StrideMetrics] = {}
        self._speed = (math.nan, -math.inf)
        self._last_gyro = {leg: -math.inf for leg in LEGS}
        self.strides = 0
        self.gaps = 0

    # ------------------------------------------------------------------ inputs
    def add_gyro(self, leg: str, time: float, swing_positive_rate: float) -> tuple[list[GaitEvent], list[StrideResult]]:
        """One sagittal gyro sample (rad/s, swing positive) of a leg.

        A gap longer than config.gap_s restarts that leg's detector (counted in self.gaps).
        """
        if time - self._last_gyro[leg] > self.config.gap_s and math.isfinite(self._last_gyro[leg]):
            self.gaps += 1
            self.detectors[leg].reset()
            self._events[(leg, HEEL_STRIKE)].clear()
        self._last_gyro[leg] = time
        events = self.detectors[leg].add(time, swing_positive_rate)
        for event in events:
            previous = self._events[(event.leg, event.kind)]
            if event.kind == HEEL_STRIKE and previous:
                self._pending.append((event.leg, previous[-1], event.time))
            previous.append(event.time)
        return events, self._complete_strides(time)

    def add_joints(self, time: float, positions) -> list[StrideResult]:
        """Joint angles (6, JOINT_NAMES order, rad); kept every joint_sample_period_s."""
        if self._joints.add(time, positions) and self._pending:
            return self._complete_strides(time)
        return []

    def add_effort(self, time: float, torque, reference_velocity) -> None:
        """Requested torques and reference velocities (6 each) for the biofeedback values."""
        self._efforts.add(time, tuple(torque) + tuple(reference_velocity))

    def set_speed(self, time: float, speed_mps: float) -> None:
        self._speed = (speed_mps, time)

    def set_goals(self, targets: dict) -> None:
        self.goals.set_targets(targets)

    def speed_at(self, time: float) -> float:
        speed, stamp = self._speed
        if time - stamp <= self.config.speed_timeout_s:
            return speed
        return math.nan

    # ------------------------------------------------------------------ strides
    def _complete_strides(self, now: float) -> list[StrideResult]:
        results = []
        while self._pending:
            leg, start, end = self._pending[0]
            if self._joints.latest < end and now - end < STRIDE_WAIT_SECONDS:
                break
            self._pending.popleft()
            results.append(self._stride(leg, start, end, now))
        return results

    def _last_between(self, leg: str, kind: str, low: float, high: float) -> float:
        inside = [t for t in self._events[(leg, kind)] if low < t < high]
        return inside[-1] if inside else math.nan

    def _stride(self, leg: str, start: float, end: float, now: float) -> StrideResult:
        other = 'right' if leg == 'left' else 'left'
        times, joints = self._joints.window(start, end)
        angles, step = None, math.nan
        if len(times) >= 4:
            index = LEGS.index(leg) * 3
            angles = joints[:, index:index + 3]
            if self.segments is not None and times[0] <= end <= times[-1]:
                at_strike = [float(np.interp(end, times, joints[:, k])) for k in range(6)]
                step = kinematics.step_length(self.segments, leg, at_strike)
        speed = self.speed_at(end)
        if not math.isfinite(speed):
            speed = self._estimated_speed(step, leg, end - start)
        toe_off = self._last_between(leg, TOE_OFF, start, end)
        effort = None
        effort_times, effort_values = self._efforts.window(start, end)
        if len(effort_times) >= 4:
            index = LEGS.index(leg) * 3
            effort = (effort_times, effort_values[:, index:index + 3], effort_values[:, 6 + index:9 + index])
        other_toe_off = min((t for t in self._events[(other, TOE_OFF)] if start < t < end), default=math.nan)
        other_heel_strike = self._last_between(other, HEEL_STRIKE, start, end)
        metrics = stride_metrics(
            leg, start, end, toe_off=toe_off, other_toe_off=other_toe_off,
            other_heel_strike=other_heel_strike, other_previous_heel_strike=other_heel_strike,
            times=times if angles is not None else None, angles=angles, step_length_m=step,
            speed_mps=speed,
            height_m=self.config.height_m, effort=effort, pelvis=self.config.pelvis)
        self.strides += 1
        self._last_stride[leg] = metrics
        result = StrideResult(metrics, self._symmetry())
        result.goals = self._update_goals(metrics, result.symmetry_percent)
        extra = [goal_cue(p) for p in self.goals.newly_reached(result.goals)]
        result.cue = self.feedback.update(metrics, now, extra)
        return result

    def _estimated_speed(self, step: float, leg: str, stride_time: float) -> float:
        """Overground: stride length (this step + the other leg's last step) / stride time."""
        other = self._last_stride.get('right' if leg == 'left' else 'left')
        if other is None or not math.isfinite(step) or not math.isfinite(other.step_length_m):
            return math.nan
        return (step + other.step_length_m) / stride_time

    def _symmetry(self) -> dict:
        left, right = self._last_stride.get('left'), self._last_stride.get('right')
        if left is None or right is None or abs(left.end - right.end) > 2.0 * left.stride_time_s:
            return {}
        return {key: symmetry_index(getattr(left, key), getattr(right, key)) for key in SYMMETRY_KEYS}

    def _update_goals(self, stride: StrideMetrics, symmetry: dict) -> list[GoalProgress]:
        self.goals.add('step_length_m', stride.step_length_m)
        self.goals.add('cadence_spm', stride.cadence_spm)
        self.goals.add('knee_swing_flexion_deg', stride.swing_knee_flexion_deg)
        self.goals.add('step_length_symmetry_percent', symmetry.get('step_length_m', math.nan))
        return self.goals.progress()
