"""Synthetic gait with known answers, for tests, benchmarks and demo recordings (plain numpy).

Joint angles follow the normative mean curves (exo_common.normative) at a speed; each leg can be
scaled (e.g. a stiff knee) and the right leg's phase offset changed (limping rhythm). The shank
gyroscope's sagittal rate, swing positive, is d(hip - knee)/dt: the shank's forward rotation.
"""
from dataclasses import dataclass

import numpy as np

from exo_common import normative
from exo_common.joints import LEGS


@dataclass
class SyntheticGait:
    times: np.ndarray            # (N,) s
    joints: np.ndarray           # (N, 6) rad, JOINT_NAMES order
    shank_rate: np.ndarray       # (N, 2) rad/s, swing positive, left and right
    heel_strikes: dict           # leg -> array of s
    stride_time: float           # s
    speed_mps: float


def synthetic_gait(duration_s: float, speed_mps: float = 0.8, height_m: float = 1.75,
                   rate_hz: float = 200.0, right_phase_offset: float = 0.5,
                   scale: dict | None = None, start_s: float = 0.0, pelvis: str = 'upright') -> SyntheticGait:
    """Normative walking for duration_s.

    Args:
        scale: leg -> (hip, knee, ankle) factors applied to the normative curves.
        right_phase_offset: fraction of a cycle the right leg lags the left (0.5 = symmetric).
        start_s: time of the first sample.
        pelvis: what the hip angles are measured against (normative.measured_band).
    """
    mean, _ = normative.measured_band(speed_mps, height_m, pelvis)
    stride = normative.stride_time_s(speed_mps, height_m)
    times = start_s + np.arange(int(duration_s * rate_hz)) / rate_hz
    joints = np.zeros((len(times), 6))
    shank = np.zeros((len(times), 2))
    strikes = {}
    for index, leg in enumerate(LEGS):
        offset = 0.0 if leg == 'left' else right_phase_offset
        phase = (times - start_s) / stride - offset
        factors = np.asarray((scale or {}).get(leg, (1.0, 1.0, 1.0)), dtype=float)
        angles = normative.sample(mean, phase).T * factors
        joints[:, 3 * index:3 * index + 3] = angles
        shank[:, index] = np.gradient(angles[:, 0] - angles[:, 1], times)
        first = start_s + offset * stride
        strikes[leg] = np.arange(first, times[-1], stride)
    return SyntheticGait(times, joints, shank, strikes, stride, speed_mps)


def write_recording(path, gait: SyntheticGait, joint_rate_hz: float = 1000.0, assistance=(60.0,) * 6,
                    faults=(), patient_id: str = 'synthetic', metadata: dict | None = None) -> None:
    """Write a gait as the analysis topics of a session (MCAP, ROS 2 CDR), for tests and demos.

    Shank IMUs at the gait's rate (gyro y = -shank rate, the URDF frame convention),
    /joint_states at joint_rate_hz (linear interpolation), treadmill speed and assistance at
    10 Hz, /diagnostics at 1 Hz with an ERROR status at each time in `faults`.
    """
    from exo_common.joints import JOINT_NAMES
    from exo_common import cdr
    from exo_analysis.mcap_io import McapRecorder
    session = {'patient_id': patient_id, 'profile': 'synthetic', 'speed_mps': gait.speed_mps,
               'assistance_percent': assistance[0], 'started_utc': '2024-01-01T00:00:00+00:00',
               **(metadata or {})}
    recorder = McapRecorder(path, {'exo_gait.session': session}, chunk_size=256 * 1024)
    imu_type, joints_type = 'sensor_msgs/msg/Imu', 'sensor_msgs/msg/JointState'
    for topic, kind in (('/imu/left_shank_imu', imu_type), ('/imu/right_shank_imu', imu_type),
                        ('/joint_states', joints_type), ('/hw/treadmill/speed', 'std_msgs/msg/Float64'),
                        ('/gait_controller/assistance', 'std_msgs/msg/Float64MultiArray'),
                        ('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray')):
        recorder.add_channel(topic, kind)
    imu_period = gait.times[1] - gait.times[0]
    joint_times = np.arange(gait.times[0], gait.times[-1], 1.0 / joint_rate_hz)
    joints = np.stack([np.interp(joint_times, gait.times, gait.joints[:, k]) for k in range(6)], axis=1)
    streams = [(t, 'imu', i) for i, t in enumerate(gait.times)]
    streams += [(t, 'joints', i) for i, t in enumerate(joint_times)]
    slow = np.arange(gait.times[0], gait.times[-1], 0.1)
    streams += [(t, 'slow', i) for i, t in enumerate(slow)]
    streams.sort(key=lambda item: item[0])
    pending_faults = sorted(faults)
    for stamp, kind, index in streams:
        ns = int(round(stamp * 1e9))
        if kind == 'imu':
            for k, leg in enumerate(LEGS):
                recorder.write(f'/imu/{leg}_shank_imu', cdr.encode_imu(
                    stamp, f'{leg}_shank_imu', (0.0, -float(gait.shank_rate[index, k]), 0.0)), ns)
        elif kind == 'joints':
            recorder.write('/joint_states', cdr.encode_joint_state(
                stamp, JOINT_NAMES, joints[index].tolist(), [0.0] * 6, [0.0] * 6), ns)
        else:
            recorder.write('/hw/treadmill/speed', cdr.encode_float64(gait.speed_mps), ns)
            recorder.write('/gait_controller/assistance', cdr.encode_float64_array(list(assistance)), ns)
            if index % 10 == 0:
                statuses = [(0, 'safety_supervisor: state', 'ENABLED', {})]
                while pending_faults and pending_faults[0] <= stamp:
                    statuses.append((2, 'safety_supervisor: interlock', f'fault at {pending_faults.pop(0):.1f} s',
                                     {'joint': 'left_knee_joint'}))
                recorder.write('/diagnostics', cdr.encode_diagnostic_array(stamp, statuses), ns)
    del imu_period
    recorder.close({'ended_utc': '2024-01-01T00:01:00+00:00'})
