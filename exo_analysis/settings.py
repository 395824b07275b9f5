"""gait_analyzer parameters and the fixed layout of its output topics (plain, no rclpy).

Output topics (standard messages only, all stamped, STREAM QoS):

- `/gait/events` - sensor_msgs/JointState, one message per event: `header.stamp` = time of the
  event itself (not of its detection), `name` = ['<leg>_heel_strike'] or ['<leg>_toe_off'],
  `position` = [detection delay in s]. Stamped and numeric, so Foxglove/PlotJuggler show events
  as points on the time axis next to the joint angles.
- `/gait/metrics` - sensor_msgs/JointState, one message per completed stride, `name` =
  METRIC_NAMES (always the same order, so `/gait/metrics.position[i]` is one quantity for the
  whole session), `position` = the values (NaN = not available yet), stamp = the heel strike
  closing the stride. Units are in the names. PlotJuggler lists JointState fields by name;
  the same channel-named-vector convention as /emg/envelope. Float64MultiArray was rejected
  (no stamp, no per-element names); DiagnosticStatus/KeyValue (strings) cannot be plotted.
- `/gait/feedback` - diagnostic_msgs/DiagnosticArray, one message per stride, for people and
  displays (Foxglove's diagnostics panels read it): a status 'gait_analyzer: cue' when a cue is
  due (level WARN = correction, OK = praise; message = the sentence; values: code, priority,
  leg, value, target, unit), 'gait_analyzer: biofeedback <leg>' (values
  '<joint>.<stance|swing>' in N m), and 'gait_analyzer: goal <name>' (target, current, best,
  progress_percent). The numbers are also in /gait/metrics for plotting.
"""
import math

from exo_common.joints import JOINTS_PER_LEG, LEGS
from exo_common.normative import PELVIS_GUIDANCE
from exo_common.params import ParamSpec
from exo_analysis.analysis import SYMMETRY_KEYS, AnalysisConfig
from exo_analysis.events import DetectorConfig
from exo_analysis.feedback import GOAL_DIRECTIONS, FeedbackConfig

NODE_NAME = 'gait_analyzer'


def _odd(value):
    return None if value % 2 == 1 else f'events.taps: must be odd, got {value}'


def _sign(value):
    return None if value in (-1, 1) else f'imu.swing_sign: must be -1 or 1, got {value}'


PARAMS = [
    ParamSpec('patient.height_m', 1.75, 'patient height (segment lengths, normative band)', 'm',
              1.2, 2.2, read_only=True),
    ParamSpec('normative.pelvis', 'upright', 'what the hip encoder reads the thigh against, for the '
              'normative band: upright (treadmill exoskeleton holding the pelvis upright, '
              'Lokomat-style: the vertical) or free (over ground: the pelvis, the clinical '
              'convention)', choices=PELVIS_GUIDANCE, read_only=True),
    ParamSpec('imu.sagittal_axis', 'y', 'shank IMU gyro axis normal to the sagittal plane',
              choices=('x', 'y', 'z'), read_only=True),
    ParamSpec('imu.swing_sign', -1, 'sign making that rate positive while the shank swings forward '
              '(-1 for the URDF IMU frames: y points left)', '', -1, 1, read_only=True, check=_sign),
    ParamSpec('events.sample_rate_hz', 200.0, 'nominal shank IMU rate (filter design)', 'Hz',
              50.0, 2000.0, read_only=True),
    ParamSpec('events.cutoff_hz', 15.0, 'low-pass cut-off of the gyro filter', 'Hz', 2.0, 40.0, read_only=True),
    ParamSpec('events.taps', 11, 'FIR length (odd); event times are corrected for its delay', '',
              3, 101, read_only=True, check=_odd),
    ParamSpec('events.swing_threshold_floor_dps', 40.0, 'smallest swing peak accepted', 'deg/s', 5.0, 500.0),
    ParamSpec('events.swing_threshold_fraction', 0.3, 'adaptive swing threshold as a fraction of recent '
              'swing peaks', '', 0.05, 0.9),
    ParamSpec('events.heel_strike_delay_percent', 2.5, 'added to the zero crossing after mid-swing, '
              '% of the last stride (2.5 for shank sensors, 0 for foot sensors)', '%', 0.0, 10.0),
    ParamSpec('events.min_stride_s', 0.5, 'heel strikes closer than this are rejected', 's', 0.2, 2.0),
    ParamSpec('events.max_swing_s', 1.5, 'a swing longer than this is abandoned', 's', 0.3, 5.0),
    ParamSpec('events.gap_s', 0.25, 'a gap in the IMU stream longer than this restarts the detector',
              's', 0.02, 5.0),
    ParamSpec('input.stale_timeout_s', 0.5, 'an input silent this long is reported', 's', 0.05, 10.0),
    ParamSpec('speed.timeout_s', 1.0, 'treadmill speed older than this is not used', 's', 0.1, 10.0),
    ParamSpec('feedback.min_interval_s', 4.0, 'at most one cue per interval', 's', 0.5, 60.0),
    ParamSpec('feedback.repeat_interval_s', 15.0, 'the same cue not again within', 's', 1.0, 600.0),
    ParamSpec('feedback.persistence_strides', 2, 'a deviation must persist this many strides', '', 1, 10),
    ParamSpec('feedback.timing_tolerance_percent', 8.0, 'step time beyond half a stride tolerated',
              '%', 1.0, 50.0),
    ParamSpec('feedback.step_length_tolerance_percent', 15.0, 'step length below normative tolerated',
              '%', 1.0, 80.0),
    ParamSpec('feedback.joint_margin_deg', 8.0, 'swing peak knee flexion / dorsiflexion below normative '
              'tolerated', 'deg', 1.0, 45.0),
    ParamSpec('feedback.praise_step_gain_m', 0.03, 'step length gain over the session start that earns '
              'praise', 'm', 0.005, 0.5),
    ParamSpec('feedback.baseline_strides', 5, 'strides per leg forming the session baseline', '', 1, 100),
    ParamSpec('goals.step_length_m', 0.0, 'therapist goal: mean step length (0 = none)', 'm', 0.0, 1.5),
    ParamSpec('goals.cadence_spm', 0.0, 'therapist goal: cadence (0 = none)', 'steps/min', 0.0, 200.0),
    ParamSpec('goals.knee_swing_flexion_deg', 0.0, 'therapist goal: peak knee flexion in swing (0 = none)',
              'deg', 0.0, 90.0),
    ParamSpec('goals.step_length_symmetry_percent', 0.0, 'therapist goal: |step length symmetry index| '
              'at most (0 = none)', '%', 0.0, 100.0),
    ParamSpec('goals.window_strides', 6, 'strides averaged for goal progress', '', 1, 50, read_only=True),
]

GOAL_NAMES = tuple(GOAL_DIRECTIONS)
STRIDE_KEYS = (
    'stride_time_s', 'cadence_spm', 'stance_percent', 'swing_percent', 'double_support_percent',
    'step_length_m', 'step_time_s', 'gps_deg', 'swing_knee_flexion_deg', 'swing_ankle_dorsiflexion_deg',
    *(f'{joint}.{group}' for group in ('rom_deg', 'gvs_deg', 'band_out_percent') for joint in JOINTS_PER_LEG),
    *(f'{joint}.{phase}.biofeedback_nm' for joint in JOINTS_PER_LEG for phase in ('stance', 'swing')),
)
METRIC_NAMES = (
    *(f'{leg}.{key}' for leg in LEGS for key in STRIDE_KEYS),
    *(f'symmetry.{key}_percent' for key in SYMMETRY_KEYS),
    'speed_mps',
    *(f'goal.{name}.{what}' for name in GOAL_NAMES for what in ('current', 'progress_percent')),
)


def goal_targets(params: dict) -> dict:
    return {name: params[f'goals.{name}'] for name in GOAL_NAMES}


def feedback_config(params: dict) -> FeedbackConfig:
    return FeedbackConfig(
        min_interval_s=params['feedback.min_interval_s'],
        repeat_interval_s=params['feedback.repeat_interval_s'],
        persistence_strides=params['feedback.persistence_strides'],
        timing_tolerance_fraction=params['feedback.timing_tolerance_percent'] / 100.0,
        step_length_tolerance_fraction=params['feedback.step_length_tolerance_percent'] / 100.0,
        joint_margin_deg=params['feedback.joint_margin_deg'],
        praise_step_gain_m=params['feedback.praise_step_gain_m'],
        baseline_strides=params['feedback.baseline_strides'],
        height_m=params['patient.height_m'])


def analysis_config(params: dict) -> AnalysisConfig:
    """AnalysisConfig from gait_analyzer parameter values (name -> value)."""
    detector = DetectorConfig(
        sample_rate_hz=params['events.sample_rate_hz'], cutoff_hz=params['events.cutoff_hz'],
        taps=params['events.taps'],
        swing_threshold_floor=math.radians(params['events.swing_threshold_floor_dps']),
        swing_threshold_fraction=params['events.swing_threshold_fraction'],
        heel_strike_delay_fraction=params['events.heel_strike_delay_percent'] / 100.0,
        min_stride_s=params['events.min_stride_s'], max_swing_s=params['events.max_swing_s'])
    return AnalysisConfig(detector=detector, feedback=feedback_config(params), goals=goal_targets(params),
                          goal_window_strides=params['goals.window_strides'],
                          height_m=params['patient.height_m'], pelvis=params['normative.pelvis'],
                          speed_timeout_s=params['speed.timeout_s'],
                          gap_s=params['events.gap_s'])


def metric_values(latest: dict, symmetry: dict, speed: float, goals: list) -> list[float]:
    """Values in METRIC_NAMES order.

    Args:
        latest: leg -> scalars() of that leg's last stride.
        symmetry: metric -> SI (%).
        speed: m/s of the last stride.
        goals: GoalProgress list.
    """
    values = dict.fromkeys(METRIC_NAMES, math.nan)
    for leg, scalars in latest.items():
        for key, value in scalars.items():
            name = f'{leg}.{key}'
            if name in values:
                values[name] = float(value)
    for key, value in symmetry.items():
        values[f'symmetry.{key}_percent'] = float(value)
    values['speed_mps'] = float(speed)
    for progress in goals:
        values[f'goal.{progress.name}.current'] = progress.current
        values[f'goal.{progress.name}.progress_percent'] = progress.progress_percent
    return list(values.values())
