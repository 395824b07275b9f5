"""Safety supervisor benchmark: cost per cycle and reaction latency.

Figures (all in microseconds unless named _ms):
- plain.*: Supervisor.on_joint_states / on_request alone (the Python decisions).
- node.request_callback: the node's request callback with both publications (what the 1 kHz
  chain pays), called directly, no executor.
- reaction.in_process: violating /joint_states message handed to the node's callback ->
  safe command published (the fault log fsync comes after and is timed separately).
- reaction.across_processes_ms: violating message published by a probe process -> safe
  command (matched by stamp on /safety_supervisor/command_stamped) received back, supervisor
  in its own process (two DDS hops).
- kill.reaction_ms: controller process SIGKILLed -> first zero command at the probe, with
  the default request watchdog (3 ms) and the default 2 ms watchdog timer.
- joint_states_gap_ms: inter-arrival gaps of a 1 kHz stream between processes here, to judge
  the 3-period watchdog defaults.
Deterministic workload (fixed postures and torques, fixed fault rotation).
"""
import json
import math
import os
import tempfile
import time

import numpy as np


def _stats(values, scale=1.0, prefix=''):
    array = np.asarray(values, dtype=float) * scale
    return {f'{prefix}n': int(array.size), f'{prefix}p50': round(float(np.percentile(array, 50)), 3),
            f'{prefix}p99': round(float(np.percentile(array, 99)), 3),
            f'{prefix}max': round(float(array.max()), 3)}


def _params(**overrides):
    from exo_common.params import resolve
    from exo_safety.supervisor import PARAMETERS
    return resolve(PARAMETERS, {'engage.ramp_time': 0.0, **overrides})


def bench_plain(cycles: int) -> dict:
    from exo_common.description import joint_limits
    from exo_common.joints import JOINT_NAMES
    from exo_safety.supervisor import Supervisor
    limits = joint_limits()
    sup = Supervisor([limits[n] for n in JOINT_NAMES], _params())
    names, posture, zero, torque = list(JOINT_NAMES), [0.2] * 6, [0.0] * 6, [5.0] * 6
    t = 1000.0
    clock = time.perf_counter_ns
    joint_costs, request_costs = [], []
    for i in range(cycles + 2):
        t += 0.001
        t0 = clock()
        sup.on_joint_states(t, names, posture, zero, zero, t, t)
        t1 = clock()
        sup.on_pelvis_imu(t, (0.0, 0.0, 0.0, 1.0), True, (0.0, 0.0, 0.0), (0.0, 0.0, 9.81), t, t)
        t2 = clock()
        sup.on_request(t, names, torque, posture, zero, t, t)
        t3 = clock()
        if i == 0:
            sup.enable(True, t, t)
        joint_costs.append(t1 - t0)
        request_costs.append(t3 - t2)
    assert sup.engaged
    return {'plain.joint_states': _stats(joint_costs[2:], 1e-3), 'plain.request': _stats(request_costs[2:], 1e-3)}


def bench_node(injections: int, cycles: int) -> dict:
    """Node callbacks called directly (no executor): cost per cycle and in-process reaction."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter
    from exo_safety.safety_supervisor_node import SafetySupervisorNode
    from exo_safety.stand_in import imu_msg, joint_state_msg, request_msg
    context = Context()
    rclpy.init(context=context)
    folder = tempfile.mkdtemp(prefix='bench_safety_')
    node = SafetySupervisorNode(context=context, parameter_overrides=[
        Parameter('fault_log.path', value=os.path.join(folder, 'faults.jsonl')),
        Parameter('engage.ramp_time', value=0.0),
        # callbacks are called by hand here, not at 1 kHz: the watchdogs are not under test
        Parameter('watchdog.joint_states_max_age', value=1.0), Parameter('watchdog.imu_max_age', value=1.0),
        Parameter('watchdog.request_max_age', value=1.0),
        # one over-speed sample must fault here: the reaction of the interlock is measured, not
        # the persistence time that lets foot-impact spikes pass
        Parameter('velocity.persistence', value=0.0)])
    published = []
    original_publish = node._publish

    def publish(command, stamp):
        published.append(time.perf_counter_ns())
        original_publish(command, stamp)
    node._publish = publish
    now = node._ros_now
    posture, torque = [0.2] * 6, [5.0] * 6

    def healthy_cycle():
        stamp = now()
        node._on_joint_states(joint_state_msg(stamp, posture))
        node._on_pelvis_imu(imu_msg(stamp))
        message = request_msg(stamp, torque, posture)
        t0 = time.perf_counter_ns()
        node._on_request(message)
        return time.perf_counter_ns() - t0

    request_costs, reactions, log_costs = [], [], []
    try:
        healthy_cycle()
        node._on_enable(type('R', (), {'data': True})(), type('S', (), {})())
        for _ in range(cycles):
            request_costs.append(healthy_cycle())
        violations = ['position', 'velocity', 'nan']
        for k in range(injections):
            sup = node.supervisor
            for _ in range(10):  # a stall of this busy machine may make inputs stale: retry
                healthy_cycle()
                sup.reset(now(), time.monotonic())
                sup.enable(True, now(), time.monotonic())
                healthy_cycle()
                if sup.state == 'ENABLED' and sup.engaged:
                    break
            else:
                raise RuntimeError(f'cannot engage: {sup.state}, {sup.latched}')
            position, velocity = list(posture), [0.0] * 6
            kind = violations[k % len(violations)]
            if kind == 'position':
                position[k % 6] = 5.0
            elif kind == 'velocity':
                velocity[k % 6] = 50.0
            else:
                position[k % 6] = math.nan
            message = joint_state_msg(now(), position, velocity)
            published.clear()
            t0 = time.perf_counter_ns()
            node._on_joint_states(message)
            t_end = time.perf_counter_ns()
            assert sup.state == 'FAULT' and published, kind
            reactions.append(published[0] - t0)
            log_costs.append(t_end - published[0])
        node.event_log.close()
        logged = sum(1 for line in open(os.path.join(folder, 'faults.jsonl')) if '"kind":"fault"' in line)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    return {'node.request_callback': _stats(request_costs, 1e-3),
            'reaction.in_process': _stats(reactions, 1e-3),
            'event_handling_after_safe_command': _stats(log_costs, 1e-3),
            'faults_injected': injections, 'faults_logged': logged}


def bench_processes(injections: int, kills: int) -> dict:
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger
    from exo_common.ros import STREAM_QOS
    from exo_common.testing import NodeProcess, RosHarness, isolate_ros_graph, wait_until
    from exo_safety.stand_in import imu_msg, joint_state_msg, request_msg
    isolate_ros_graph()
    folder = tempfile.mkdtemp(prefix='bench_safety_')
    ros = RosHarness('bench_safety_probe')
    received = {}  # stamp (ns) -> (monotonic ns, effort)
    zero_times = []
    gaps = []
    last_joint = [None]

    def on_stamped(msg):
        received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = \
            (time.perf_counter_ns(), list(msg.effort))

    def on_command(msg):
        if not any(msg.data):
            zero_times.append(time.perf_counter_ns())

    def on_joint(msg):
        t = time.perf_counter_ns()
        if last_joint[0] is not None:
            gaps.append(t - last_joint[0])
        last_joint[0] = t

    probe = Node('bench_safety_listener', context=ros.context)
    stamped_sub = probe.create_subscription(JointState, '/safety_supervisor/command_stamped', on_stamped,
                                            STREAM_QOS)
    probe.create_subscription(Float64MultiArray, '/effort_controller/commands', on_command, STREAM_QOS)
    probe.create_subscription(JointState, '/joint_states', on_joint, STREAM_QOS)
    reset_client = probe.create_client(Trigger, '/safety_supervisor/reset')
    enable_client = probe.create_client(SetBool, '/safety_supervisor/enable')
    ros.add_node(probe)

    def call(client, request, timeout=30.0):
        """One client per service for the whole run (a new client per call can miss answers)."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'{client.srv_name} not available')
        future = client.call_async(request)
        wait_until(future.done, timeout, f'an answer from {client.srv_name}')
        return future.result()
    result = {}
    processes = []
    try:
        # --- reaction across processes: probe -> supervisor process -> probe
        supervisor = NodeProcess('exo_safety.safety_supervisor_node', (
            '-p', f'fault_log.path:={folder}/faults.jsonl', '-p', 'engage.ramp_time:=0.0',
            '-p', 'watchdog.joint_states_max_age:=1.0', '-p', 'watchdog.imu_max_age:=1.0',
            '-p', 'watchdog.request_max_age:=1.0', '-p', 'safe_mode:=zero'))
        processes.append(supervisor)
        joint_pub = ros.publisher(JointState, '/joint_states')
        imu_pub = ros.publisher(type(imu_msg(0.0)), '/imu/pelvis_imu')
        request_pub = ros.publisher(JointState, '/gait_controller/effort_request')
        now_ns = lambda: ros.node.get_clock().now().nanoseconds  # noqa: E731
        posture = [0.2] * 6

        def healthy(effort=(5.0,) * 6):
            stamp = now_ns() * 1e-9
            joint_pub.publish(joint_state_msg(stamp, posture))
            imu_pub.publish(imu_msg(stamp))
            time.sleep(0.001)
            message = request_msg(now_ns() * 1e-9, effort, posture)
            request_pub.publish(message)
            return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec

        def wait_command(stamp_ns, timeout=2.0):
            wait_until(lambda: stamp_ns in received, timeout, 'command for a stamp')
            return received[stamp_ns]

        call(reset_client, Trigger.Request())
        for endpoint, count in ((stamped_sub, 'get_publisher_count'), (joint_pub, 'get_subscription_count'),
                                (imu_pub, 'get_subscription_count'), (request_pub, 'get_subscription_count')):
            wait_until(lambda: getattr(endpoint, count)() > 0, 10.0, 'matched endpoints')
        latencies, retries = [], 0
        k = 0
        while len(latencies) < injections:
            k += 1
            try:
                wait_command(healthy())
            except TimeoutError:  # e.g. a request refused as stale after a stall: try again
                retries += 1
                continue
            call(reset_client, Trigger.Request())
            response = call(enable_client, SetBool.Request(data=True))
            if not response.success and 'stale' in response.message:
                retries += 1  # the two service round trips outlasted the 1 s joint-state watchdog
                continue
            assert response.success, response.message
            for _ in range(10):  # engaged: torque on (rate limited)
                if all(e > 0.0 for e in wait_command(healthy())[1]):
                    break
            else:
                raise RuntimeError('the supervisor did not engage')
            position = list(posture)
            position[k % 6] = 5.0 if k % 2 else math.nan
            message = joint_state_msg(now_ns() * 1e-9, position)
            stamp_ns = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
            t0 = time.perf_counter_ns()
            joint_pub.publish(message)
            t1, effort = wait_command(stamp_ns)
            assert not any(effort)
            latencies.append(t1 - t0)
        result['reaction.across_processes_ms'] = _stats(latencies, 1e-6)
        result['reaction.across_processes_retries'] = retries
        supervisor.stop()
        processes.clear()

        # --- controller killed: defaults for the request watchdog and timer
        sensors = NodeProcess('exo_safety.stand_in', ('-p', 'role:=sensors'))
        supervisor = NodeProcess('exo_safety.safety_supervisor_node', (
            '-p', f'fault_log.path:={folder}/kill.jsonl', '-p', 'safe_mode:=zero',
            '-p', 'watchdog.joint_states_max_age:=0.5', '-p', 'watchdog.imu_max_age:=0.5'))
        processes += [sensors, supervisor]
        kill_latencies, all_gaps = [], []
        for _ in range(kills):
            controller = NodeProcess('exo_safety.stand_in', ('-p', 'role:=controller'))
            processes.append(controller)
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                call(reset_client, Trigger.Request())
                if call(enable_client, SetBool.Request(data=True)).success:
                    break
                time.sleep(0.2)
            time.sleep(0.3)
            gaps.clear()
            time.sleep(0.5)
            all_gaps += gaps
            zero_times.clear()
            t0 = time.perf_counter_ns()
            controller.process.kill()
            wait_until(lambda: zero_times, 2.0, 'zero command after the kill')
            kill_latencies.append(zero_times[0] - t0)
            controller.process.wait()
            processes.remove(controller)
            time.sleep(0.2)
        result['kill.reaction_ms'] = _stats(kill_latencies, 1e-6)
        result['joint_states_gap_ms'] = _stats(all_gaps, 1e-6)
        result['joint_states_gap_ms']['share_over_3ms'] = round(float(np.mean(np.asarray(all_gaps) > 3e6)), 4)
    finally:
        for process in processes:
            process.stop()
        ros.close()
    return result


def run(quick: bool = False) -> dict:
    injections = 200 if quick else 1000
    figures = {}
    figures.update(bench_plain(2000 if quick else 20000))
    figures.update(bench_node(injections, 2000 if quick else 10000))
    figures.update(bench_processes(injections, 2 if quick else 10))
    return figures


if __name__ == '__main__':
    import sys
    print(json.dumps(run(quick='--quick' in sys.argv), indent=2))
