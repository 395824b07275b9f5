"""encoder_node, imu_node and emg_node over real ROS topics: outputs, stamps, refusals, diagnostics."""
import math
import time

import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import Imu, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from exo_common.joints import EMG_CHANNELS, JOINT_NAMES
from exo_common.ros import sec_to_stamp, stamp_to_sec
from exo_common.testing import wait_until
from exo_sensors.emg_node import EmgNode
from exo_sensors.encoder_node import EncoderNode
from exo_sensors.imu_node import ImuNode

MID = [0.3] * 6


def statuses(diagnostics):
    return {status.name: status for array in list(diagnostics) for status in array.status}


def values_of(status):
    return {kv.key: kv.value for kv in status.values}


def wait_for_status(diagnostics, name, value=None, timeout=3.0):
    """The latest status called name (whose values mention value); a repeated problem is only in
    the 1 Hz summary, new ones are published at once."""
    def found():
        status = statuses(diagnostics).get(name)
        return status is not None and (value is None or value in ' '.join(values_of(status).values()))
    wait_until(found, timeout, f'diagnostic {name!r} with {value!r}')
    return statuses(diagnostics)[name]


def connected(publisher):
    wait_until(lambda: publisher.get_subscription_count() > 0, 5.0, 'the node to subscribe')
    return publisher


def joint_state(stamp, positions, names=JOINT_NAMES, efforts=()):
    msg = JointState(name=list(names), position=[float(p) for p in positions], effort=[float(e) for e in efforts])
    msg.header.stamp = sec_to_stamp(stamp)
    return msg


def test_encoder_node_publishes_valid_samples_and_refuses_each_bad_input(ros):
    ros.add_node(EncoderNode(context=ros.context))
    out = ros.collect(JointState, '/joint_states')
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics')
    raw = connected(ros.publisher(JointState, '/hw/joint_states'))
    good_stamps = []

    def send_good():
        """Publish a fresh good sample and wait for it: everything sent before has been handled."""
        stamp = time.time()
        raw.publish(joint_state(stamp, MID))
        good_stamps.append(stamp)
        wait_until(lambda: any(abs(stamp_to_sec(m.header.stamp) - stamp) < 1e-6 for m in out), 3.0,
                   'the good sample')
        return stamp

    t0 = time.time()
    raw.publish(joint_state(t0, MID, efforts=[1, 2, 3, 4, 5, 6]))
    wait_until(lambda: out, 3.0, 'first /joint_states')
    first = out[0]
    assert list(first.name) == list(JOINT_NAMES) and list(first.position) == pytest.approx(MID)
    assert list(first.effort) == [1, 2, 3, 4, 5, 6] and len(first.velocity) == 6
    assert stamp_to_sec(first.header.stamp) == pytest.approx(t0, abs=1e-6)  # device stamp carried through
    good_stamps.append(t0)

    knee = JOINT_NAMES.index('left_knee_joint')

    def knee_at(value):
        return MID[:knee] + [value] + MID[knee + 1:]

    cases = [  # (message kwargs, stamp after the last good sample, diagnostic name, expected value text)
        ({'positions': knee_at(math.nan)}, 0.001, 'left_knee_joint: non-finite position', 'nan'),
        ({'positions': knee_at(math.inf)}, 0.001, 'left_knee_joint: non-finite position', 'inf'),
        ({'positions': knee_at(2.5)}, 0.001, 'left_knee_joint: out of range', '2.5'),
        ({'positions': knee_at(0.6)}, 0.001, 'left_knee_joint: jump', '0.6'),
        ({'positions': MID[:5]}, 0.001, 'length', '5'),
        ({'positions': MID, 'names': list(JOINT_NAMES[:5]) + ['elbow_joint']}, 0.001, 'names', 'elbow_joint'),
        ({'positions': MID}, 'stale', 'stale stamp', None),
        ({'positions': MID}, 5.0, 'future stamp', None),
        ({'positions': MID}, -0.0005, 'out-of-order stamp', None),
        ({'positions': MID}, 0.0, 'duplicate stamp', None),
    ]
    for kwargs, after, name, value in cases:
        last = send_good()
        if after == 'stale':  # newer than the last sample but older than 20 ms when it arrives
            time.sleep(0.1)
            after = 0.001
        raw.publish(joint_state(last + after, **kwargs))
        status = wait_for_status(diagnostics, f'encoder_node: {name}', value)
        assert status.level == bytes([2])
        if 'joint' in name:
            assert values_of(status)['joint'] == 'left_knee_joint'
    send_good()
    published = sorted(stamp_to_sec(m.header.stamp) for m in out)
    assert published == pytest.approx(sorted(good_stamps), abs=1e-6)  # no refused sample got through


def test_imu_node_publishes_orientation_and_refuses_bad_samples(ros):
    ros.add_node(ImuNode(context=ros.context, parameter_overrides=[Parameter('frames', value=['left_shank_imu'])]))
    out = ros.collect(Imu, '/imu/left_shank_imu')
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics')
    raw = connected(ros.publisher(Imu, '/hw/imu/left_shank_imu'))
    t0 = time.time()

    def send(offset, accel=(0.0, 0.0, 9.81), gyro=(0.0, 0.0, 0.0), frame='left_shank_imu'):
        msg = Imu()
        msg.header.stamp, msg.header.frame_id = sec_to_stamp(t0 + offset), frame
        msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = accel
        msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = gyro
        msg.orientation_covariance[0] = -1.0
        raw.publish(msg)

    send(0.0, accel=(0.0, 9.81, 0.0))  # lying on its side: 90 degrees about x
    wait_until(lambda: out, 3.0, 'first /imu/left_shank_imu')
    first = out[0]
    assert first.header.frame_id == 'left_shank_imu'
    assert stamp_to_sec(first.header.stamp) == pytest.approx(t0, abs=1e-6)
    assert abs(first.orientation.x) == pytest.approx(math.sqrt(0.5), abs=1e-6)
    assert first.orientation_covariance[0] > 0 and first.angular_velocity_covariance[0] > 0
    for offset, kwargs, name in [(0.005, {'gyro': (math.nan, 0.0, 0.0)}, 'left_shank_imu: non-finite'),
                                 (0.010, {'frame': 'pelvis_imu'}, 'left_shank_imu: frame_id'),
                                 (-0.005, {}, 'left_shank_imu: out-of-order stamp'),
                                 (0.015, {'accel': (0.0, 0.0, 1e4)}, 'left_shank_imu: out of range')]:
        send(offset, **kwargs)
        wait_for_status(diagnostics, f'imu_node: {name}')
    send(0.020)
    wait_until(lambda: len(out) == 2, 3.0, 'the next good sample')
    assert stamp_to_sec(out[1].header.stamp) == pytest.approx(t0 + 0.020, abs=1e-6)


def publish_paced(publisher, msg):
    """Publish without outrunning the KEEP_LAST 10 history of a reliable writer."""
    publisher.publish(msg)
    time.sleep(0.003)


def emg_batch(stamp, values, names=EMG_CHANNELS, n=20, fs=2000.0):
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = sec_to_stamp(stamp)
    for k in range(n):
        nanoseconds = int(round(k / fs * 1e9))
        msg.points.append(JointTrajectoryPoint(positions=[float(v) for v in values(k)],
                                               time_from_start=Duration(sec=0, nanosec=nanoseconds)))
    return msg


def test_emg_node_envelope_calibration_and_refusals(ros):
    ros.add_node(EmgNode(context=ros.context, parameter_overrides=[
        Parameter('mvc.calibration_duration', value=0.5), Parameter('plausibility.max_age', value=5.0)]))
    out = ros.collect(JointState, '/emg/envelope')
    diagnostics = ros.collect(DiagnosticArray, '/diagnostics')
    raw = connected(ros.publisher(JointTrajectory, '/hw/emg'))
    t0 = time.time() - 2.0  # the batches are sent faster than real time: keep their stamps in the past

    def values(k):
        return [(i + 1) * 0.1 * math.sin(2 * math.pi * 97.0 * k / 2000.0 + i) for i in range(8)]

    raw.publish(emg_batch(t0, values))
    wait_until(lambda: out, 3.0, 'first /emg/envelope')
    assert list(out[0].name) == list(EMG_CHANNELS)
    assert stamp_to_sec(out[0].header.stamp) == pytest.approx(t0 + 19 / 2000.0, abs=1e-6)  # last sample

    answer = ros.call(Trigger, '/emg_node/calibrate_mvc', Trigger.Request())
    assert answer.success
    assert not ros.call(Trigger, '/emg_node/calibrate_mvc', Trigger.Request()).success  # already running
    for batch in range(1, 60):  # the calibration window (0.5 s) ends after batch 50
        publish_paced(raw, emg_batch(t0 + batch * 0.01, lambda k: values(k + 20 * batch)))
    status = wait_for_status(diagnostics, 'emg_node: mvc calibration')
    assert status.level == bytes([0])
    wait_until(lambda: len(out) >= 60, 3.0, 'all envelopes')
    envelopes = [list(m.effort) for m in out[:60]]
    peaks = [max(e[i] for e in envelopes[1:51]) for i in range(8)]
    calibrated = values_of(status)
    for i, channel in enumerate(EMG_CHANNELS):
        assert float(calibrated[f'mvc.{channel}'].split()[0]) == pytest.approx(peaks[i], rel=0.05)
    assert out[-1].position[7] == pytest.approx(out[-1].effort[7] / peaks[7], rel=0.1)

    bad = [(emg_batch(t0 + 0.60, lambda k: [math.nan] + values(k)[1:]), 'left_rectus_femoris: non-finite', 'nan'),
           (emg_batch(t0 + 0.61, values, names=list(EMG_CHANNELS[:7]) + ['left_biceps']), 'names', 'left_biceps'),
           (emg_batch(t0 + 0.62, lambda k: values(k)[:7]), 'length', '7'),
           (emg_batch(t0 + 0.30, values), 'out-of-order stamp', None),
           (emg_batch(t0 - 5.0, values), 'out-of-order stamp', None)]
    for msg, name, value in bad:
        raw.publish(msg)
        wait_for_status(diagnostics, f'emg_node: {name}', value)
    raw.publish(emg_batch(t0 + 0.60, lambda k: [0.0] + values(k)[1:]))  # a flat channel from now on
    for batch in range(61, 120):  # two check windows (0.25 s)
        publish_paced(raw, emg_batch(t0 + batch * 0.01, lambda k: [0.0] + values(k + 20 * batch)[1:]))
    wait_for_status(diagnostics, 'emg_node: left_rectus_femoris: flat line')
    wait_until(lambda: len(out) >= 120, 3.0, 'the envelopes after the refusals')
    stamps = [round(stamp_to_sec(m.header.stamp) - t0, 4) for m in out]
    assert len(stamps) == len(set(stamps)) == 120  # none of the refused batches was published
