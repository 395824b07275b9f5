"""Benchmark of mujoco_sim: physics alone, with device emulation, and the node publishing.

- physics_only: mj_step of the full model (belt, guidance, actuators, sensors) from Python.
- simulation: ExoSimulation.step (patient model, harness, treadmill) + encoders() every step +
  imus() + emg(), a plain Python loop as the controller's closed-loop tests use it.
- node_realtime: the node paced in real time for a few seconds, publishing everything;
  achieved real-time factor and the process CPU share (of one core).
"""
import json
import os
import resource
import time

import mujoco
import numpy as np

from exo_sim.simulation import ExoSimulation


def _steps_per_second(loop, steps: int) -> float:
    start = time.perf_counter()
    loop(steps)
    return steps / (time.perf_counter() - start)


def _physics_only(steps: int) -> dict:
    sim = ExoSimulation('healthy', seed=0)
    model, data = sim.model, sim.data

    def loop(n):
        for _ in range(n):
            mujoco.mj_step(model, data)
    rate = _steps_per_second(loop, steps)
    return {'steps_per_s': round(rate), 'real_time_factor': round(rate * sim.dt, 2)}


def _simulation(steps: int) -> dict:
    sim = ExoSimulation('stroke_left_hemiparesis', seed=0)
    command = [0.0] * 6
    per_step = []

    def loop(n):
        for _ in range(n):
            t0 = time.perf_counter()
            sim.encoders()
            sim.step(command)
            sim.imus()
            sim.emg()
            per_step.append(time.perf_counter() - t0)
    rate = _steps_per_second(loop, steps)
    micros = np.array(per_step) * 1e6
    return {'steps_per_s': round(rate), 'real_time_factor': round(rate * sim.dt, 2),
            'step_us_p50': round(float(np.percentile(micros, 50)), 1),
            'step_us_p99': round(float(np.percentile(micros, 99)), 1)}


def _node_realtime(seconds: float) -> dict:
    import rclpy
    from rclpy.context import Context
    from diagnostic_msgs.msg import DiagnosticArray
    from exo_common.ros import DIAGNOSTICS_QOS
    from exo_common.ros import make_executor
    from exo_common.testing import isolate_ros_graph
    from exo_sim.mujoco_sim_node import MujocoSimNode

    isolate_ros_graph()
    context = Context()
    rclpy.init(context=context)
    node = MujocoSimNode(context=context)
    factors = []
    node.create_subscription(DiagnosticArray, '/diagnostics', lambda msg: factors.extend(
        float(kv.value) for s in msg.status for kv in s.values if kv.key == 'real_time_factor'), DIAGNOSTICS_QOS)
    executor = make_executor(context)
    executor.add_node(node)
    usage0, wall0, sim0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), node.sim.time
    while time.monotonic() - wall0 < seconds:
        executor.spin_once(timeout_sec=0.05)
    usage1, wall1, sim1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), node.sim.time
    node.destroy_node()
    executor.shutdown(timeout_sec=1.0)
    rclpy.shutdown(context=context)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {'real_time_factor': round((sim1 - sim0) / (wall1 - wall0), 3),
            'reported_real_time_factor_min': min(factors) if factors else None,
            'cpu_share_of_one_core': round(cpu / (wall1 - wall0), 2)}


def run(quick: bool = False) -> dict:
    steps = 5000 if quick else 30000
    return {
        'timestep_s': 0.001,
        'physics_only': _physics_only(steps),
        'simulation_with_devices': _simulation(steps),
        'node_realtime_publishing': _node_realtime(3.0 if quick else 10.0),
    }


if __name__ == '__main__':
    print(json.dumps(run(quick=bool(os.environ.get('QUICK'))), indent=2))
