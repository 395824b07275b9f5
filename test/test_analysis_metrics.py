"""Stride metrics, kinematics, symmetry, feedback cues and goals on synthetic gait with known answers."""
import math

import numpy as np
import pytest

from exo_common import normative
from exo_analysis import kinematics
from exo_analysis.analysis import AnalysisConfig, GaitAnalysis
from exo_analysis.events import DetectorConfig
from exo_analysis.feedback import Cue, FeedbackConfig, FeedbackEngine, GoalTracker
from exo_analysis.metrics import stride_metrics, symmetry_index
from exo_analysis.synthetic import synthetic_gait

STAND_IN_URDF = '''<robot name="stand_in">
  <link name="pelvis"/>
  <joint name="left_knee_joint" type="revolute"><origin xyz="0 0 -0.40"/></joint>
  <joint name="left_ankle_joint" type="revolute"><origin xyz="0 0 -0.38"/></joint>
  <joint name="right_knee_joint" type="revolute"><origin xyz="0 0 -0.40"/></joint>
  <joint name="right_ankle_joint" type="revolute"><origin xyz="0 0 -0.38"/></joint>
  <ros2_control name="x"><joint name="left_knee_joint"/></ros2_control>
</robot>'''
SEGMENTS = kinematics.segments_from_urdf(STAND_IN_URDF)


def analyse(gait, goals=None, feedback=None, pelvis='upright'):
    config = AnalysisConfig(detector=DetectorConfig(heel_strike_delay_fraction=0.025), goals=goals or {},
                            feedback=feedback or FeedbackConfig(), pelvis=pelvis)
    analysis = GaitAnalysis(config, SEGMENTS)
    results = []
    for i, t in enumerate(gait.times):
        analysis.set_speed(t, gait.speed_mps)
        for k, leg in enumerate(('left', 'right')):
            results += analysis.add_gyro(leg, t, gait.shank_rate[i, k])[1]
        results += analysis.add_joints(t, list(gait.joints[i]))
    return results


def test_segments_from_urdf_joint_origins():
    assert SEGMENTS['left'] == kinematics.LegSegments(0.40, 0.38)
    with pytest.raises(kinematics.KinematicsError):
        kinematics.segments_from_urdf('<robot name="x"/>')
    with pytest.raises(kinematics.KinematicsError):
        kinematics.segments_from_urdf('not xml')


def test_step_length_known_geometry():
    # leading hip flexed 20 deg with straight knee, trailing hip extended 10 deg
    joints = [math.radians(20), 0.0, 0.0, math.radians(-10), 0.0, 0.0]
    expected = 0.78 * (math.sin(math.radians(20)) + math.sin(math.radians(10)))
    assert kinematics.step_length(SEGMENTS, 'left', joints) == pytest.approx(expected)
    assert kinematics.step_length(SEGMENTS, 'right', joints) == pytest.approx(-expected)


def test_symmetry_index_formula():
    assert symmetry_index(0.5, 0.5) == 0.0
    assert symmetry_index(0.6, 0.4) == pytest.approx(40.0)
    assert math.isnan(symmetry_index(math.nan, 0.4))


def test_stride_metrics_known_stride():
    times = np.linspace(10.0, 11.2, 121)
    phase = (times - 10.0) / 1.2
    angles = np.stack([0.3 * np.sin(2 * np.pi * phase), 0.5 + 0.4 * np.sin(2 * np.pi * phase),
                       0.1 * np.cos(2 * np.pi * phase)], axis=1)
    m = stride_metrics('left', 10.0, 11.2, toe_off=10.72, other_toe_off=10.12, other_heel_strike=10.6,
                       other_previous_heel_strike=10.6, times=times, angles=angles, speed_mps=0.8)
    assert m.stride_time_s == pytest.approx(1.2)
    assert m.cadence_spm == pytest.approx(100.0)
    assert m.stance_percent == pytest.approx(60.0)
    assert m.swing_percent == pytest.approx(40.0)
    assert m.double_support_percent == pytest.approx((0.12 + 0.12) / 1.2 * 100)
    assert m.step_time_s == pytest.approx(0.6)
    assert m.rom_deg['hip'] == pytest.approx(math.degrees(0.6), rel=0.01)
    assert m.rom_deg['knee'] == pytest.approx(math.degrees(0.8), rel=0.01)
    assert m.curves_rad.shape == (3, 51)


def test_normative_gait_scores_zero_deviation_and_symmetry():
    gait = synthetic_gait(25.0, speed_mps=0.8)
    results = analyse(gait)
    strides = [r.stride for r in results[4:]]
    assert len(strides) >= 25
    expected_cycle = normative.stride_time_s(0.8)
    mean, _ = normative.measured_band(0.8)
    for s in strides:
        assert s.stride_time_s == pytest.approx(expected_cycle, abs=0.01)
        assert s.gps_deg < 1.0
        assert s.rom_deg['knee'] == pytest.approx(np.degrees(np.ptp(mean[1])), abs=1.0)
        assert 50.0 < s.stance_percent < 65.0
        # step length: ankle positions from the normative angles at the heel strike
        hs_angles = normative.sample(mean, np.array([0.0, 0.5]))
        lead = kinematics.ankle_forward(SEGMENTS[s.leg], hs_angles[0, 0], hs_angles[1, 0])
        trail = kinematics.ankle_forward(SEGMENTS[s.leg], hs_angles[0, 1], hs_angles[1, 1])
        assert s.step_length_m == pytest.approx(lead - trail, abs=0.01)
    symmetric = [r.symmetry_percent for r in results[8:] if r.symmetry_percent]
    assert all(abs(sym['step_length_m']) < 2.0 and abs(sym['stance_percent']) < 2.0 for sym in symmetric)


def test_the_hip_band_follows_what_the_hip_encoder_measures_against():
    """A treadmill exoskeleton holding the pelvis upright reads the thigh against the vertical,
    about 11 deg less flexed than the clinical hip: scored against the clinical band a healthy
    walker would look 11 deg off at the hip all stride long."""
    for measured, band, hip_off in (('upright', 'upright', False), ('free', 'free', False),
                                    ('upright', 'free', True)):
        results = analyse(synthetic_gait(15.0, speed_mps=0.8, pelvis=measured), pelvis=band)
        strides = [r.stride for r in results[4:]]
        assert len(strides) >= 12
        hip = np.median([s.gvs_deg['hip'] for s in strides])
        knee = np.median([s.gvs_deg['knee'] for s in strides])
        assert knee < 1.0
        assert (hip > 8.0) if hip_off else (hip < 1.0), (measured, band, hip)
    with pytest.raises(ValueError):
        normative.measured_band(0.8, pelvis='tilted')


def test_stiff_left_knee_gives_asymmetry_cue_and_deviation():
    gait = synthetic_gait(40.0, speed_mps=0.8, scale={'left': (1.0, 0.6, 1.0)})
    results = analyse(gait)
    left = [r.stride for r in results[4:] if r.stride.leg == 'left']
    right = [r.stride for r in results[4:] if r.stride.leg == 'right']
    assert np.mean([s.gvs_deg['knee'] for s in left]) > 5.0 > np.mean([s.gvs_deg['knee'] for s in right])
    assert np.mean([s.rom_deg['knee'] for s in left]) == pytest.approx(0.6 * np.mean([s.rom_deg['knee'] for s in right]),
                                                                        rel=0.05)
    codes = {r.cue.code for r in results if r.cue is not None}
    assert 'knee_flexion_low.left' in codes and 'knee_flexion_low.right' not in codes
    times = [r.stride.end for r in results if r.cue is not None]
    assert all(b - a >= FeedbackConfig().min_interval_s for a, b in zip(times, times[1:]))


def test_goal_progress_and_goal_reached_cue():
    gait = synthetic_gait(25.0, speed_mps=0.8)
    results = analyse(gait, goals={'step_length_m': 0.40, 'cadence_spm': 200.0})
    last = {g.name: g for g in results[-1].goals}
    assert last['step_length_m'].reached and last['step_length_m'].progress_percent > 100.0
    assert last['cadence_spm'].progress_percent == pytest.approx(100 * 120 / normative.stride_time_s(0.8) / 200, rel=0.02)
    assert not last['cadence_spm'].reached
    assert [r.cue.code for r in results if r.cue is not None][0] == 'goal_reached.step_length_m'


def test_lower_is_better_goal():
    tracker = GoalTracker({'step_length_symmetry_percent': 5.0}, window=2)
    tracker.add('step_length_symmetry_percent', -10.0)
    tracker.add('step_length_symmetry_percent', 10.0)
    (progress,) = tracker.progress()
    assert progress.current == 10.0 and progress.progress_percent == 50.0 and not progress.reached


def test_cue_priority_rate_limit_and_repeat():
    engine = FeedbackEngine(FeedbackConfig(min_interval_s=4.0, repeat_interval_s=15.0, persistence_strides=1))
    stride = stride_metrics('left', 0.0, 1.2, toe_off=0.7, other_previous_heel_strike=0.3, speed_mps=0.8)
    stride.swing_knee_flexion_deg = 20.0
    stride.swing_ankle_dorsiflexion_deg = 10.0
    stride.step_length_m = 0.55
    first = engine.update(stride, now=1.2)
    assert first.code == 'knee_flexion_low.left'       # priority 4 beats heel_strike_late (3)
    assert engine.update(stride, now=2.0) is None       # rate limit
    second = engine.update(stride, now=6.0)
    assert second.code == 'heel_strike_late.left' and 'late by 0.30 s' in second.text
    goal = Cue('goal_reached.step_length_m', 5, 'goal reached', 'praise')
    assert engine.update(stride, now=10.5, extra=[goal]).code == 'goal_reached.step_length_m'
    assert engine.update(stride, now=15.0) is None       # knee cue said at 1.2 s: not before 16.2 s
    assert engine.update(stride, now=16.5).code == 'knee_flexion_low.left'
