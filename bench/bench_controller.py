"""Gait controller compute time per control step and achievable loop rate (plain Python, no DDS).

Workload: the controller in guidance mode with assist-as-needed on (no EMG), fed a
deterministic walking posture (the reference itself plus a fixed perturbation) at 1 kHz.
Figures: p50/p99/max of one step (GaitController.step) in microseconds, and the rate a
sleeping loop reaches at 500 Hz and 1 kHz targets when each period runs one step.
"""
import json
import time

import numpy as np

from exo_common.description import expand_xacro, joint_limits
from exo_common.params import resolve
from exo_control.controller import PARAMS, GaitController
from exo_control.dynamics import ExoDynamics


def _controller():
    params = resolve(PARAMS, {'aan.enabled': True, 'mode': 'guidance'})
    controller = GaitController(params, ExoDynamics(expand_xacro(wearer=False)), joint_limits())
    controller.set_enabled(True)
    controller.set_emg(0.0, [], [])  # refused (wrong channels): yielding stays off, as without EMG
    return controller


def _postures(count: int):
    rng = np.random.default_rng(0)
    phase = np.arange(count) * 0.001 * 0.58
    base = np.stack([0.3 + 0.3 * np.sin(2 * np.pi * phase), 0.4 + 0.4 * np.sin(2 * np.pi * phase + 1.0),
                     0.05 * np.sin(2 * np.pi * phase)], axis=1)
    q = np.concatenate([base, np.roll(base, count // 2, axis=0)], axis=1) + rng.normal(0, 1e-3, (count, 6))
    return q.tolist(), np.gradient(q, 0.001, axis=0).tolist()


def step_times(steps: int) -> np.ndarray:
    controller = _controller()
    q, qd = _postures(steps)
    times = np.empty(steps)
    clock = time.perf_counter
    for k in range(steps):
        start = clock()
        controller.step(1.0 + k * 0.001, q[k], qd[k])
        times[k] = clock() - start
    return times * 1e6


def loop_rate(rate_hz: float, seconds: float) -> float:
    controller = _controller()
    steps = int(rate_hz * seconds)
    q, qd = _postures(steps)
    period = 1.0 / rate_hz
    start = time.perf_counter()
    deadline = start
    for k in range(steps):
        controller.step(1.0 + k * period, q[k], qd[k])
        deadline += period
        remaining = deadline - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
    return steps / (time.perf_counter() - start)


def run(quick: bool = False) -> dict:
    times = step_times(5000 if quick else 60000)
    seconds = 2.0 if quick else 10.0
    return {
        'step_us_p50': round(float(np.percentile(times[500:], 50)), 1),
        'step_us_p99': round(float(np.percentile(times[500:], 99)), 1),
        'step_us_max': round(float(times[500:].max()), 1),
        'loop_rate_hz_at_500': round(loop_rate(500.0, seconds), 1),
        'loop_rate_hz_at_1000': round(loop_rate(1000.0, seconds), 1),
    }


if __name__ == '__main__':
    print(json.dumps(run(), indent=2))
