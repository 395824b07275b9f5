"""Replay a recorded session through the same analysis as gait_analyzer and summarise it.

Streaming: messages are read chunk by chunk (exo_analysis.mcap_io.SessionReader), joint angles
and torques decimated to 100 Hz at the index level, and only running sums, per-stride scalars
and decimated time series are kept - memory does not grow with the 1 kHz streams.
"""
from dataclasses import dataclass, field
import math
import statistics
from typing import Optional

import numpy as np

from exo_common import cdr, normative
from exo_common.joints import JOINTS_PER_LEG, LEGS
from exo_analysis import kinematics
from exo_analysis.analysis import GaitAnalysis
from exo_analysis.mcap_io import RecordingError, SessionReader, find_recording
from exo_analysis.metrics import PHASE_POINTS, symmetry_index

IMU_TOPICS = {leg: (f'/imu/{leg}_shank_imu', f'/hw/imu/{leg}_shank_imu') for leg in LEGS}
JOINT_TOPICS = ('/joint_states', '/hw/joint_states')
EFFORT_TOPIC = '/gait_controller/effort_request'
SPEED_TOPIC = '/hw/treadmill/speed'
ASSISTANCE_TOPIC = '/gait_controller/assistance'
DIAGNOSTICS_TOPIC = '/diagnostics'
JOINT_PERIOD_NS = 10_000_000
ASSISTANCE_PERIOD_NS = 100_000_000
MAX_SERIES_POINTS = 2000
ERROR_LEVEL = 2


@dataclass
class SessionData:
    path: str
    metadata: dict
    truncated: bool
    start: float = math.nan
    end: float = math.nan
    strides: list = field(default_factory=list)      # dicts: leg, time, scalars, symmetry
    events: dict = field(default_factory=dict)       # '<leg>_<kind>' -> [times]
    curve_sums: dict = field(default_factory=dict)   # leg -> (3, 51) sum of stride curves (rad)
    curve_counts: dict = field(default_factory=dict)
    assistance: list = field(default_factory=list)   # (time, [values])
    speed: list = field(default_factory=list)        # (time, m/s)
    faults: list = field(default_factory=list)       # (time, name, message)
    cues: list = field(default_factory=list)         # (time, code, text)
    skipped: dict = field(default_factory=dict)      # topic -> undecodable messages
    pelvis: str = 'upright'                          # normative.measured_band of the analysis


def _config():
    from exo_common.config import load_node_params
    from exo_analysis.settings import NODE_NAME, PARAMS, analysis_config
    try:
        params = load_node_params(NODE_NAME, PARAMS)
    except Exception:  # no config file in this install: the declared defaults
        params = {spec.name: spec.default for spec in PARAMS}
    return params, analysis_config(params)


def _segments(height: float) -> Optional[dict]:
    try:
        from exo_common.description import load_description
        return kinematics.segments_from_urdf(load_description(patient_height=height).urdf)
    except Exception:
        return None


def replay(session) -> SessionData:
    """Run the analysis over a recording.

    Args:
        session: an .mcap file or a directory holding one.

    Raises:
        RecordingError: unreadable, corrupt or foreign file (the message names it).
    """
    path = find_recording(session)
    params, config = _config()
    axis = 'xyz'.index(params['imu.sagittal_axis'])
    sign = float(params['imu.swing_sign'])
    with SessionReader(path) as reader:
        reader.read_metadata()
        available = {topic for topic, _, _ in reader.channels.values()}
        imu_topic = {leg: next((t for t in IMU_TOPICS[leg] if t in available), None) for leg in LEGS}
        joint_topic = next((t for t in JOINT_TOPICS if t in available), None)
        if not available:
            raise RecordingError(f'{path}: no channels: empty or not a ROS 2 recording')
        if None in imu_topic.values():
            raise RecordingError(f'{path}: no shank IMU topics ({", ".join(IMU_TOPICS["left"] + IMU_TOPICS["right"])}'
                                 ' and right) in this recording: cannot find gait events')
        leg_of = {topic: leg for leg, topic in imu_topic.items()}
        data = SessionData(str(path), dict(reader.metadata), False, pelvis=params['normative.pelvis'])
        analysis = GaitAnalysis(config, _segments(params['patient.height_m']))
        wanted = {topic: 0 for topic in leg_of}
        wanted.update({SPEED_TOPIC: 0, DIAGNOSTICS_TOPIC: 0, ASSISTANCE_TOPIC: ASSISTANCE_PERIOD_NS,
                       EFFORT_TOPIC: JOINT_PERIOD_NS})
        if joint_topic:
            wanted[joint_topic] = JOINT_PERIOD_NS
        order = None
        clock_offset = 0.0  # device stamp - receive time, from the latest IMU message
        for topic, log_time, _, payload in reader.messages(wanted):
            try:
                if topic in leg_of:
                    stamp, rate = cdr.imu_angular_velocity(payload)
                    if not math.isfinite(rate[axis]):
                        continue
                    clock_offset = stamp - log_time * 1e-9
                    if not math.isfinite(data.start):
                        data.start = stamp
                    data.end = max(data.end, stamp) if math.isfinite(data.end) else stamp
                    events, results = analysis.add_gyro(leg_of[topic], stamp, rate[axis] * sign)
                    for event in events:
                        data.events.setdefault(f'{event.leg}_{event.kind}', []).append(event.time)
                    _collect(data, results)
                elif topic == joint_topic:
                    stamp, names, position, _, _ = cdr.joint_state(payload)
                    order = order or _order(names)
                    if order and len(position) == len(names):
                        _collect(data, analysis.add_joints(stamp, [position[i] for i in order]))
                elif topic == EFFORT_TOPIC:
                    stamp, names, _, velocity, effort = cdr.joint_state(payload)
                    index = _order(names)
                    if index and len(effort) == len(velocity) == len(names):
                        analysis.add_effort(stamp, [effort[i] for i in index], [velocity[i] for i in index])
                elif topic == SPEED_TOPIC:  # no header: receive time on the IMU stamps' clock
                    speed = cdr.float64(payload)
                    analysis.set_speed(log_time * 1e-9 + clock_offset, speed)
                    _append_series(data.speed, (log_time * 1e-9 + clock_offset, speed))
                elif topic == ASSISTANCE_TOPIC:
                    _append_series(data.assistance, (log_time * 1e-9 + clock_offset,
                                                     list(cdr.float64_array(payload))))
                elif topic == DIAGNOSTICS_TOPIC:
                    stamp, statuses = cdr.diagnostic_array(payload)
                    for level, name, message, _ in statuses:
                        if level == ERROR_LEVEL and (not data.faults or data.faults[-1][1:] != (name, message)):
                            data.faults.append((log_time * 1e-9 + clock_offset, name, message))
            except cdr.CdrError:
                data.skipped[topic] = data.skipped.get(topic, 0) + 1
        data.truncated = reader.truncated
    return data


def _order(names) -> Optional[list]:
    from exo_common.joints import JOINT_NAMES
    try:
        return [names.index(name) for name in JOINT_NAMES]
    except ValueError:
        return None


def _append_series(series: list, point) -> None:
    """Keep at most MAX_SERIES_POINTS by dropping every other point when full."""
    series.append(point)
    if len(series) >= 2 * MAX_SERIES_POINTS:
        del series[1::2]


def _collect(data: SessionData, results) -> None:
    for result in results:
        stride = result.stride
        data.strides.append({'leg': stride.leg, 'time': stride.end, **{k: float(v) for k, v in stride.scalars().items()},
                             **{f'symmetry.{k}': float(v) for k, v in result.symmetry_percent.items()}})
        if stride.curves_rad is not None:
            if stride.leg not in data.curve_sums:
                data.curve_sums[stride.leg] = np.zeros((len(JOINTS_PER_LEG), PHASE_POINTS))
                data.curve_counts[stride.leg] = 0
            data.curve_sums[stride.leg] += stride.curves_rad
            data.curve_counts[stride.leg] += 1
        if result.cue is not None:
            data.cues.append((stride.end, result.cue.code, result.cue.text))


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _sd(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) > 1 else math.nan


def summarise(data: SessionData) -> dict:
    """The numbers of a session: everything the report plots, as plain JSON-able values."""
    session_meta = data.metadata.get('exo_gait.session', {})
    speeds = [s for _, s in data.speed if math.isfinite(s)]
    speed = statistics.median(speeds) if speeds else _mean(s['speed_mps'] for s in data.strides)
    per_leg = {}
    for leg in LEGS:
        strides = [s for s in data.strides if s['leg'] == leg]
        keys = sorted({k for s in strides for k in s if k not in ('leg', 'time') and not k.startswith('symmetry.')})
        per_leg[leg] = {'strides': len(strides),
                        **{k: _mean(s.get(k, math.nan) for s in strides) for k in keys},
                        **{f'{k}.sd': _sd(s.get(k, math.nan) for s in strides) for k in
                           ('step_length_m', 'stride_time_s', 'stance_percent')}}
    symmetry_keys = sorted({k for s in data.strides for k in s if k.startswith('symmetry.')})
    curves = {}
    for leg, total in data.curve_sums.items():
        curves[leg] = np.degrees(total / data.curve_counts[leg]).round(3).tolist()
    band = None
    if math.isfinite(speed) and speed > 0:
        mean, sd = normative.measured_band(speed, pelvis=data.pelvis)
        band = {'mean_deg': np.degrees(mean).round(3).tolist(), 'sd_deg': np.degrees(sd).round(3).tolist(),
                'pelvis': data.pelvis}
    assistance_means = [statistics.fmean(v) for _, v in data.assistance if v]
    both = [(per_leg[leg].get('step_length_m', math.nan)) for leg in LEGS]
    return {
        'file': data.path,
        'truncated': data.truncated,
        'session': session_meta,
        'patient_id': session_meta.get('patient_id', 'unknown'),
        'started_utc': session_meta.get('started_utc', ''),
        'duration_s': data.end - data.start if math.isfinite(data.start) else 0.0,
        'speed_mps': speed,
        'legs': per_leg,
        'step_length_m': _mean(both),
        # Session symmetry from each leg's mean (stride-by-stride indices swing wildly when a
        # short step meets a long one; the per-stride series stays in the plots).
        'symmetry_percent': {key: symmetry_index(per_leg['left'].get(key, math.nan),
                                                 per_leg['right'].get(key, math.nan))
                             for key in (k[len('symmetry.'):] for k in symmetry_keys)},
        'assistance_percent_mean': _mean(assistance_means),
        'events': {kind: len(times) for kind, times in data.events.items()},
        'faults': [{'time': t, 'name': n, 'message': m} for t, n, m in data.faults],
        'cues': [{'time': t, 'code': c, 'text': x} for t, c, x in data.cues],
        'skipped_messages': data.skipped,
        'plots': {
            'joint_curves_deg': {'legs': curves, 'normative': band, 'joints': list(JOINTS_PER_LEG)},
            'step_length_m': {leg: [[s['time'], s['step_length_m']] for s in data.strides if s['leg'] == leg]
                              for leg in LEGS},
            'symmetry_step_length_percent': [[s['time'], s['symmetry.step_length_m']] for s in data.strides
                                             if math.isfinite(s.get('symmetry.step_length_m', math.nan))],
            'assistance': [[t, v] for t, v in data.assistance],
            'stride_time_s': {leg: [[s['time'], s['stride_time_s']] for s in data.strides if s['leg'] == leg]
                              for leg in LEGS},
            'heel_strikes': {leg: data.events.get(f'{leg}_heel_strike', []) for leg in LEGS},
        },
    }
