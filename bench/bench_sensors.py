"""Sensor nodes: Python processing time per message, and latency added over real topics.

1. processing: each node's subscription callback called directly with prepared raw messages
   (encoder 1 kHz JointState, one IMU sample, one 20-sample EMG batch), including building and
   publishing the output; perf_counter around each call.
2. latency: the node runs as its own process (`python -m exo_sensors.<node>`); this process
   publishes raw messages stamped with the wall clock at the device rate and receives the
   node's output; latency = arrival time - stamp (the output keeps the device stamp). The same
   measured on the raw topic itself (one hop, no node) is the baseline; the node adds the
   difference.

Deterministic workload (fixed seed, fixed rates). Quick mode: fewer messages and only the
encoder (the node in the 1 kHz control chain) over real topics.
"""
import json
import math
import os
import time

import numpy as np

from exo_common.joints import EMG_CHANNELS, JOINT_NAMES
from exo_common.ros import sec_to_stamp, stamp_to_sec
from exo_common.testing import NodeProcess, RosHarness, isolate_ros_graph, wait_until


def _percentiles(samples_s) -> dict:
    values = np.asarray(samples_s) * 1e6
    return {'n': int(len(values)), 'p50_us': round(float(np.percentile(values, 50)), 1),
            'p99_us': round(float(np.percentile(values, 99)), 1), 'max_us': round(float(values.max()), 1)}


def _joint_state(rng, stamp):
    from sensor_msgs.msg import JointState
    angle = 0.1 + 0.2 * math.sin(2.0 * math.pi * stamp)  # a smooth 1 Hz movement with sensor noise
    msg = JointState(name=list(JOINT_NAMES), position=[angle + 1e-4 * float(v) for v in rng.standard_normal(6)],
                     effort=[float(v) for v in rng.standard_normal(6)])
    msg.header.stamp = sec_to_stamp(stamp)
    return msg


def _imu(rng, stamp, frame='left_shank_imu'):
    from sensor_msgs.msg import Imu
    msg = Imu()
    msg.header.stamp, msg.header.frame_id = sec_to_stamp(stamp), frame
    a = [0.0, 0.0, 9.81] + 0.1 * rng.standard_normal(3)
    w = 0.5 * rng.standard_normal(3)
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = map(float, a)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = map(float, w)
    msg.orientation_covariance[0] = -1.0
    return msg


EMG_BATCH_SPAN_S = 19 / 2000.0  # first to last sample of a 20-sample batch at 2 kHz


def _emg(rng, stamp, fs=2000.0, n=20):
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
    msg = JointTrajectory(joint_names=list(EMG_CHANNELS))
    msg.header.stamp = sec_to_stamp(stamp)
    block = 0.1 * rng.standard_normal((n, len(EMG_CHANNELS)))
    msg.points = [JointTrajectoryPoint(positions=block[k].tolist(),
                                       time_from_start=Duration(sec=0, nanosec=int(round(k / fs * 1e9))))
                  for k in range(n)]
    return msg


def processing_times(count: int) -> dict:
    """Per-message callback time of each node, in process, no spinning."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter
    from exo_sensors.emg_node import EmgNode
    from exo_sensors.encoder_node import EncoderNode
    from exo_sensors.imu_node import ImuNode

    context = Context()
    rclpy.init(context=context)
    rng = np.random.default_rng(0)
    results = {}
    emg_batches = min(count // 10, 800)
    emg_start = []

    def emg_stamp(k: int) -> float:
        """Contiguous 10 ms batches, processed much faster than real time: stamps centred on the
        moment the EMG case starts, so that all of them stay inside the +-5 s window."""
        if k == 0:
            emg_start[:] = [time.time() - 0.005 * emg_batches]
        return emg_start[0] + k * 0.01
    wide_stamp_window = [Parameter('plausibility.max_age', value=5.0), Parameter('plausibility.max_future', value=5.0)]
    try:
        cases = [
            ('encoder_node', EncoderNode(context=context), lambda node: node.on_raw,
             lambda k: _joint_state(rng, time.time()), count),
            ('imu_node', ImuNode(context=context), lambda node: (lambda msg: node.on_raw('left_shank_imu', msg)),
             lambda k: _imu(rng, time.time()), count // 2),
            ('emg_node', EmgNode(context=context, parameter_overrides=wide_stamp_window), lambda node: node.on_batch,
             lambda k: _emg(rng, emg_stamp(k)), emg_batches),
        ]
        for name, node, callback_of, make, n in cases:
            callback = callback_of(node)
            durations = []
            for k in range(n):
                msg = make(k)
                start = time.perf_counter()
                callback(msg)
                durations.append(time.perf_counter() - start)
            assert node.published == n, f'{name} refused benchmark messages: {dict(node.problems.items())}'
            results[name] = _percentiles(durations[n // 10:])  # without warm-up
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    return results


def added_latency(module: str, raw_type, raw_topic: str, out_type, out_topic: str, make, rate_hz: float,
                  seconds: float, ros_args=(), output_sample_s: float = 0.0) -> dict:
    """End-to-end latency through a node process vs. one hop on the raw topic.

    output_sample_s: from a raw message's stamp to the sample its output is stamped with (an EMG
    batch is stamped with its first sample, the envelope with the batch's last): the baseline
    is measured from that sample too, or the batch's own span would count as hop latency.
    """
    rng = np.random.default_rng(1)
    node = NodeProcess(module, ros_args=ros_args)
    harness = RosHarness('bench_sensors_probe')
    try:
        through, direct = [], []
        harness.node.create_subscription(out_type, out_topic,
                                         lambda m: through.append(time.time() - stamp_to_sec(m.header.stamp)), 10)
        harness.node.create_subscription(raw_type, raw_topic,
                                         lambda m: direct.append(time.time() - stamp_to_sec(m.header.stamp)
                                                                 - output_sample_s), 10)
        publisher = harness.publisher(raw_type, raw_topic)
        wait_until(lambda: publisher.get_subscription_count() >= 2, 30.0, f'{module} to subscribe')
        period = 1.0 / rate_hz
        start = time.perf_counter()
        for k in range(int(seconds * rate_hz)):
            while time.perf_counter() < start + k * period:
                time.sleep(min(2e-4, max(0.0, start + k * period - time.perf_counter())))
            publisher.publish(make(rng, time.time()))
        time.sleep(0.3)
        skip = int(0.2 * rate_hz)
        through, direct = through[skip:], direct[skip:]
        result = {'through_node': _percentiles(through), 'one_hop_baseline': _percentiles(direct)}
        result['added_p50_us'] = round(result['through_node']['p50_us'] - result['one_hop_baseline']['p50_us'], 1)
        result['added_p99_us'] = round(result['through_node']['p99_us'] - result['one_hop_baseline']['p99_us'], 1)
        result['delivered'] = f'{len(through)}/{len(direct)}'
        return result
    finally:
        harness.close()
        node.stop()


def run(quick: bool = False) -> dict:
    isolate_ros_graph(int(os.environ.get('ROS_DOMAIN_ID', '0')) or None)
    from sensor_msgs.msg import Imu, JointState
    from trajectory_msgs.msg import JointTrajectory

    results = {'processing_per_message': processing_times(2000 if quick else 10000)}
    latency = {'encoder_node': added_latency('exo_sensors.encoder_node', JointState, '/hw/joint_states',
                                             JointState, '/joint_states', _joint_state, 1000.0,
                                             3.0 if quick else 10.0)}
    if not quick:
        latency['imu_node'] = added_latency(
            'exo_sensors.imu_node', Imu, '/hw/imu/left_shank_imu', Imu, '/imu/left_shank_imu', _imu, 200.0, 10.0,
            ros_args=('-p', 'frames:=[left_shank_imu]'))
        latency['emg_node'] = added_latency(
            'exo_sensors.emg_node', JointTrajectory, '/hw/emg', JointState, '/emg/envelope',
            lambda rng, now: _emg(rng, now - EMG_BATCH_SPAN_S), 100.0, 10.0, output_sample_s=EMG_BATCH_SPAN_S)
    results['added_latency'] = latency
    return results


if __name__ == '__main__':
    print(json.dumps(run(quick=bool(os.environ.get('QUICK'))), indent=2))
