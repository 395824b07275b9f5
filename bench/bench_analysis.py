"""Benchmark: `exo-gait report` on 1, 10 and 60-minute recordings with every topic of a session.

The recordings are synthetic but full-size: all topics of session_recorder's default list at
their contract rates (about 8,000 messages/s: four 1 kHz JointState streams, the commands, ten
IMUs at 200 Hz, EMG batches, speed, assistance, diagnostics), normative walking at 0.8 m/s.
They are written with numpy straight into 1-second zstd chunks with message indexes (a
Python MCAP writer would take longer than the report). The report runs in a child process;
figures: wall time and peak resident memory of that process (psutil, sampled every 20 ms).
"""
import json
import os
import pathlib
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import psutil
import zstandard

from exo_common import normative
from exo_common.joints import EMG_CHANNELS, IMU_FRAMES, JOINT_NAMES
from exo_common import cdr
from exo_analysis.mcap_io import MCAP_MAGIC, ros2_schema

SPEED = 0.8
MARK = 1234.5678  # marker value used to find field offsets in a message template


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack('<I', len(raw)) + raw


def _record(opcode: int, body: bytes) -> bytes:
    return struct.pack('<BQ', opcode, len(body)) + body


class _Stream:
    """One topic: a fixed-size CDR template, rate, and how to fill each message's values."""

    def __init__(self, channel, topic, type_name, rate, template_values, fill=None, emg=False):
        self.channel, self.topic, self.type_name, self.rate, self.fill = channel, topic, type_name, rate, fill
        self.template = np.frombuffer(template_values, dtype=np.uint8)
        marker = struct.pack('<d', MARK)
        self.value_offset = template_values.find(marker)
        self.has_header = type_name.endswith(('JointState', 'Imu', 'DiagnosticArray', 'JointTrajectory'))


def _streams():
    zeros6 = [MARK] + [0.0] * 5
    joint = cdr.encode_joint_state(0.0, JOINT_NAMES, zeros6, [0.0] * 6, [0.0] * 6)
    streams, channel = [], 1
    for topic in ('/hw/joint_states', '/joint_states', '/gait_controller/effort_request',
                  '/safety_supervisor/command_stamped'):
        streams.append(_Stream(channel, topic, 'sensor_msgs/msg/JointState', 1000, joint, 'joints'))
        channel += 1
    streams.append(_Stream(channel, '/effort_controller/commands', 'std_msgs/msg/Float64MultiArray', 1000,
                           cdr.encode_float64_array([MARK] + [0.0] * 5)))
    channel += 1
    for prefix in ('/hw/imu/', '/imu/'):
        for frame in IMU_FRAMES:
            imu = cdr.encode_imu(0.0, frame, (0.0, MARK, 0.0))
            fill = f'gyro_{frame.split("_")[0]}' if 'shank' in frame else None
            streams.append(_Stream(channel, prefix + frame, 'sensor_msgs/msg/Imu', 200, imu, fill))
            channel += 1
    emg = cdr.Writer().header(0.0).pack('I', 4, len(EMG_CHANNELS))
    for name in EMG_CHANNELS:
        emg.string(name)
    emg.pack('I', 4, 20)
    for k in range(20):
        emg.doubles([MARK if k == 0 else 0.0] + [0.0] * 7).doubles([]).doubles([]).doubles([])
        emg.pack('iI', 4, 0, k * 500_000)
    streams.append(_Stream(channel, '/hw/emg', 'trajectory_msgs/msg/JointTrajectory', 100, emg.bytes()))
    channel += 1
    streams.append(_Stream(channel, '/emg/envelope', 'sensor_msgs/msg/JointState', 100,
                           cdr.encode_joint_state(0.0, EMG_CHANNELS, [MARK] + [0.0] * 7, [], [0.0] * 8)))
    channel += 1
    streams.append(_Stream(channel, '/hw/treadmill/speed', 'std_msgs/msg/Float64', 10, cdr.encode_float64(SPEED)))
    channel += 1
    streams.append(_Stream(channel, '/gait_controller/assistance', 'std_msgs/msg/Float64MultiArray', 10,
                           cdr.encode_float64_array([60.0] * 6)))
    channel += 1
    streams.append(_Stream(channel, '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', 5,
                           cdr.encode_diagnostic_array(0.0, [(0, 'bench: node', 'ok', {'a': '1'})])))
    return streams


def write_recording(path, minutes: float) -> int:
    """A full-rate synthetic session; returns the number of messages."""
    streams = _streams()
    mean, _ = normative.joint_curves(SPEED)
    stride = normative.stride_time_s(SPEED)
    start = 1_700_000_000.0
    total = 0
    with open(path, 'wb') as out:
        out.write(MCAP_MAGIC + _record(1, _s('ros2') + _s('bench_analysis')))
        schema_ids = {}
        for stream in streams:
            if stream.type_name not in schema_ids:
                schema_ids[stream.type_name] = len(schema_ids) + 1
                data = ros2_schema(stream.type_name).encode()
                out.write(_record(3, struct.pack('<H', schema_ids[stream.type_name]) + _s(stream.type_name)
                                  + _s('ros2msg') + struct.pack('<I', len(data)) + data))
            out.write(_record(4, struct.pack('<HH', stream.channel, schema_ids[stream.type_name]) + _s(stream.topic)
                              + _s('cdr') + struct.pack('<I', 0)))
        session = [('patient_id', 'bench'), ('profile', 'synthetic'), ('speed_mps', str(SPEED)),
                   ('assistance_percent', '60'), ('started_utc', '2024-01-01T00:00:00+00:00')]
        entries = b''.join(_s(k) + _s(v) for k, v in session)
        out.write(_record(0x0C, _s('exo_gait.session') + struct.pack('<I', len(entries)) + entries))
        compressor = zstandard.ZstdCompressor(level=1)
        for second in range(int(minutes * 60)):
            blocks, times_all, sizes_all, owners = [], [], [], []
            for stream in streams:
                n = stream.rate
                times = start + second + np.arange(n) / n
                size = 22 + len(stream.template)
                records = np.zeros((n, 9 + size), dtype=np.uint8)
                header = np.zeros(n, dtype=[('op', 'u1'), ('len', '<u8'), ('ch', '<u2'), ('seq', '<u4'),
                                            ('log', '<u8'), ('pub', '<u8')])
                ns = np.round(times * 1e9).astype(np.uint64)
                header['op'], header['len'], header['ch'], header['log'], header['pub'] = 5, size, stream.channel, ns, ns
                records[:, :31] = header.view(np.uint8).reshape(n, 31)
                payload = records[:, 31:]
                payload[:] = stream.template
                if stream.has_header:
                    stamp = np.zeros(n, dtype=[('sec', '<i4'), ('nsec', '<u4')])
                    stamp['sec'] = (ns // 1_000_000_000).astype(np.int64)
                    stamp['nsec'] = (ns % 1_000_000_000).astype(np.int64)
                    payload[:, 4:12] = stamp.view(np.uint8).reshape(n, 8)
                phase = (times - start) / stride
                if stream.fill == 'joints':
                    values = np.concatenate([normative.sample(mean, phase).T, normative.sample(mean, phase - 0.5).T], axis=1)
                    payload[:, stream.value_offset:stream.value_offset + 48] = np.ascontiguousarray(values, dtype='<f8').view(np.uint8).reshape(n, 48)
                elif stream.fill in ('gyro_left', 'gyro_right'):
                    offset = 0.0 if stream.fill == 'gyro_left' else 0.5
                    angles = normative.sample(mean, phase - offset)
                    rate = np.gradient(angles[0] - angles[1], times)
                    payload[:, stream.value_offset:stream.value_offset + 8] = np.ascontiguousarray(-rate, dtype='<f8').view(np.uint8).reshape(n, 8)
                blocks.append(records)
                times_all.append(ns)
                sizes_all.append(np.full(n, 9 + size, dtype=np.int64))
                owners.append(np.full(n, stream.channel, dtype=np.int64))
            times_cat, sizes_cat = np.concatenate(times_all), np.concatenate(sizes_all)
            order = np.argsort(times_cat, kind='stable')
            offsets_sorted = np.cumsum(sizes_cat[order]) - sizes_cat[order]
            offsets = np.empty_like(offsets_sorted)
            offsets[order] = offsets_sorted
            chunk = np.zeros(int(sizes_cat.sum()), dtype=np.uint8)
            position, indexes = 0, []
            for block, channel_owner in zip(blocks, owners):
                n, width = block.shape
                mine = offsets[position:position + n]
                chunk[(mine[:, None] + np.arange(width)).ravel()] = block.ravel()
                entries = np.stack([times_cat[position:position + n].astype(np.uint64), mine.astype(np.uint64)], axis=1)
                indexes.append((int(channel_owner[0]), entries.astype('<u8').tobytes()))
                position += n
            raw = chunk.tobytes()
            compressed = compressor.compress(raw)
            body = (struct.pack('<QQQI', int(times_cat.min()), int(times_cat.max()), len(raw), zlib.crc32(raw))
                    + _s('zstd') + struct.pack('<Q', len(compressed)) + compressed)
            out.write(_record(6, body))
            for channel, entries in indexes:
                out.write(_record(7, struct.pack('<HI', channel, len(entries)) + entries))
            total += len(times_cat)
        out.write(_record(0x0F, struct.pack('<I', 0)) + _record(2, struct.pack('<QQI', 0, 0, 0)) + MCAP_MAGIC)
    return total


def _measure_report(recording: pathlib.Path) -> dict:
    command = [sys.executable, '-c', 'import sys; from exo_analysis.cli import report_main; '
               'sys.exit(report_main(sys.argv[1:]))', str(recording), '--no-store']
    began = time.monotonic()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.02)
    elapsed = time.monotonic() - began
    _, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f'report failed: {err.decode()}')
    summary = json.loads(recording.with_name(recording.stem + '_report.json').read_text())
    return {'report_s': round(elapsed, 2), 'peak_rss_mb': round(peak / 2**20, 1),
            'strides': summary['legs']['left']['strides'] + summary['legs']['right']['strides']}


def run(quick: bool = False) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory(prefix='bench_analysis_') as folder:
        for minutes in ((1,) if quick else (1, 10, 60)):
            path = pathlib.Path(folder) / f'session_{minutes}min.mcap'
            began = time.monotonic()
            messages = write_recording(path, minutes)
            figures[f'{minutes}min'] = {
                'messages': messages, 'file_mb': round(os.path.getsize(path) / 2**20, 1),
                'write_s': round(time.monotonic() - began, 1), **_measure_report(path)}
            path.unlink()
    return figures


if __name__ == '__main__':
    print(json.dumps(run(quick='--quick' in sys.argv), indent=2))
