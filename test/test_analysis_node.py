"""gait_analyzer and session_recorder as ROS nodes over real topics."""
import math
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64

from exo_common import normative
from exo_common.joints import JOINT_NAMES
from exo_common.ros import sec_to_stamp
from exo_common.testing import NodeProcess, wait_until
from exo_analysis.mcap_io import SessionReader
from exo_analysis.settings import METRIC_NAMES
from exo_analysis.synthetic import synthetic_gait

SPEED = 0.8


def publish_gait(harness, gait, nan_at=None):
    imu = {leg: harness.publisher(Imu, f'/imu/{leg}_shank_imu') for leg in ('left', 'right')}
    joints = harness.publisher(JointState, '/joint_states')
    speed = harness.publisher(Float64, '/hw/treadmill/speed')
    wait_until(lambda: all(p.get_subscription_count() for p in (*imu.values(), joints, speed)), 10.0,
               'gait_analyzer subscriptions')
    for i, stamp in enumerate(gait.times):
        for k, leg in enumerate(('left', 'right')):
            msg = Imu()
            msg.header.stamp = sec_to_stamp(stamp)
            msg.angular_velocity.y = math.nan if i == nan_at else -float(gait.shank_rate[i, k])
            imu[leg].publish(msg)
        state = JointState(name=list(JOINT_NAMES), position=gait.joints[i].tolist())
        state.header.stamp = sec_to_stamp(stamp)
        joints.publish(state)
        if i % 20 == 0:
            speed.publish(Float64(data=SPEED))
            time.sleep(0.01)


def test_gait_analyzer_over_topics(ros):
    from rclpy.parameter import Parameter
    from exo_analysis.gait_analyzer_node import GaitAnalyzerNode
    events = ros.collect(JointState, '/gait/events')
    metrics = ros.collect(JointState, '/gait/metrics')
    feedback = ros.collect(DiagnosticArray, '/gait/feedback')
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics')
    ros.add_node(GaitAnalyzerNode(context=ros.context, parameter_overrides=[
        Parameter('goals.step_length_m', value=0.3), Parameter('speed.timeout_s', value=5.0)]))
    # 15 s of gait, stamped in the recent past (stamps must not lie in the future)
    gait = synthetic_gait(15.0, speed_mps=SPEED, start_s=time.time() - 20.0,
                          scale={'left': (1.0, 0.6, 1.0)})
    publish_gait(ros, gait, nan_at=500)
    wait_until(lambda: len(metrics) >= 14, 20.0, 'stride metrics')
    strikes = [e for e in events if e.name == ['left_heel_strike']]
    assert len(strikes) >= 8
    # detection delay (s): toe off is known at the rise into swing (~0.2-0.3 s later), a heel
    # strike within 0.1 s (filter centre + zero crossing; negative: the shank delay lies ahead)
    assert all(-0.05 < e.position[0] < 0.5 for e in events)
    assert all(e.position[0] < 0.1 for e in strikes)
    last = dict(zip(metrics[-1].name, metrics[-1].position))
    assert list(metrics[-1].name) == list(METRIC_NAMES)
    index = METRIC_NAMES.index('left.stride_time_s')
    stride_times = [m.position[index] for m in metrics if math.isfinite(m.position[index])]
    assert np.median(stride_times) == pytest.approx(normative.stride_time_s(SPEED), abs=0.01)
    assert last['speed_mps'] == pytest.approx(SPEED)
    assert last['left.knee.gvs_deg'] > 5.0 > last['right.knee.gvs_deg']
    assert last['goal.step_length_m.progress_percent'] > 100.0
    statuses = [s for m in feedback for s in m.status]
    cues = {kv.value for s in statuses if s.name == 'gait_analyzer: cue' for kv in s.values if kv.key == 'code'}
    assert 'knee_flexion_low.left' in cues and 'goal_reached.step_length_m' in cues
    assert any(s.name == 'gait_analyzer: goal step_length_m' for s in statuses)
    nan_reports = [s for m in diagnostics for s in m.status if 'nan' in s.message or 'angular velocity nan' in s.message]
    assert nan_reports and nan_reports[0].level == b'\x01'


def test_recorder_process_closes_file_on_sigterm(tmp_path, ros):
    process = NodeProcess('exo_analysis.recorder', ros_args=(
        '-p', f'output_dir:={tmp_path}', '-p', 'session.name:=rec', '-p', 'patient.id:=p1',
        '-p', "topics:=['/hw/treadmill/speed:std_msgs/msg/Float64', '/late_topic']"))
    try:
        publisher = ros.publisher(Float64, '/hw/treadmill/speed')
        wait_until(lambda: publisher.get_subscription_count() > 0, 20.0, 'recorder subscription')
        time.sleep(1.0)  # let the reliable match complete on the recorder's side too
        for i in range(50):
            publisher.publish(Float64(data=0.1 * i))
            time.sleep(0.005)
        late = ros.publisher(Float64, '/late_topic')  # untyped: found in the graph
        deadline = time.monotonic() + 10.0
        while late.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        late.publish(Float64(data=42.0))
        time.sleep(0.5)
    finally:
        code, output = process.stop()
    assert code == 0, output
    with SessionReader(tmp_path / 'rec.mcap') as reader:
        values = [m for m in reader.messages({'/hw/treadmill/speed': 0, '/late_topic': 0})]
        assert reader.complete
    assert len([v for v in values if v[0] == '/hw/treadmill/speed']) == 50
    assert [v[0] for v in values].count('/late_topic') == 1
    assert reader.metadata['exo_gait.session']['patient_id'] == 'p1'
