"""Session recording -> report -> store -> progress, and what bad files and kills must not do."""
import json
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64, Float64MultiArray

from exo_common import normative
from exo_common.joints import JOINT_NAMES
from exo_common.ros import sec_to_stamp
from exo_common.testing import wait_until
from exo_analysis import kinematics, store
from exo_analysis.cli import progress_main, report_main
from exo_analysis.mcap_io import SessionReader
from exo_analysis.synthetic import synthetic_gait

SPEED = 0.8
ASSISTANCE = [60.0, 55.0]
TOPICS = ['/imu/left_shank_imu:sensor_msgs/msg/Imu', '/imu/right_shank_imu:sensor_msgs/msg/Imu',
          '/joint_states:sensor_msgs/msg/JointState', '/hw/treadmill/speed:std_msgs/msg/Float64',
          '/gait_controller/assistance:std_msgs/msg/Float64MultiArray',
          '/diagnostics:diagnostic_msgs/msg/DiagnosticArray']


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    """A 20 s synthetic session recorded by SessionRecorderNode over real topics."""
    from exo_common.testing import RosHarness
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from exo_analysis.recorder import SessionRecorderNode
    folder = tmp_path_factory.mktemp('session')
    gait = synthetic_gait(20.0, speed_mps=SPEED, start_s=time.time() - 60.0)
    harness = RosHarness()
    try:
        recorder = harness.add_node(SessionRecorderNode(context=harness.context, parameter_overrides=[
            Parameter('output_dir', value=str(folder)), Parameter('session.name', value='s1'),
            Parameter('patient.id', value='p7'), Parameter('session.profile', value='hemiparesis'),
            Parameter('session.speed_mps', value=SPEED), Parameter('topics', value=TOPICS),
            Parameter('flush_period_s', value=0.2), Parameter('reliable', value=True)]))
        # reliable with a deep history: a writer keeping only the last 10 samples overwrites
        # unacknowledged ones whenever the recorder's process stalls (a loaded CI machine)
        deep = QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE)
        pubs = {'left': harness.publisher(Imu, '/imu/left_shank_imu', deep),
                'right': harness.publisher(Imu, '/imu/right_shank_imu', deep),
                'joints': harness.publisher(JointState, '/joint_states', deep),
                'speed': harness.publisher(Float64, '/hw/treadmill/speed', deep),
                'assist': harness.publisher(Float64MultiArray, '/gait_controller/assistance', deep),
                'diag': harness.publisher(DiagnosticArray, '/diagnostics', deep)}
        wait_until(lambda: all(p.get_subscription_count() for p in pubs.values()), 10.0, 'recorder subscriptions')
        begin = time.monotonic()
        for i, stamp in enumerate(gait.times):
            for k, leg in enumerate(('left', 'right')):
                msg = Imu()
                msg.header.stamp = sec_to_stamp(stamp)
                msg.header.frame_id = f'{leg}_shank_imu'
                msg.angular_velocity.y = -float(gait.shank_rate[i, k])
                pubs[leg].publish(msg)
            if i % 2 == 0:  # joint angles at 100 Hz
                pubs['joints'].publish(JointState(header=msg.header.__class__(stamp=sec_to_stamp(stamp)),
                                                  name=list(JOINT_NAMES), position=gait.joints[i].tolist()))
            if i % 20 == 0:
                pubs['speed'].publish(Float64(data=SPEED))
                pubs['assist'].publish(Float64MultiArray(data=ASSISTANCE))
                level = b'\x02' if i == 2000 else b'\x00'
                pubs['diag'].publish(DiagnosticArray(status=[DiagnosticStatus(
                    level=level, name='safety_supervisor: interlock', message='left_knee_joint over limit'
                    if level == b'\x02' else 'ok')]))
            if i % 20 == 0:  # twice real time, in bursts of 20 samples (the report decimates on stamps)
                time.sleep(max(0.001, begin + (stamp - gait.times[0]) / 2.0 - time.monotonic()))
        total = 2 * len(gait.times) + len(gait.times[::2]) + 3 * len(gait.times[::20])
        wait_until(lambda: sum(recorder.recorder.counts.values()) >= total, 20.0, 'all messages recorded')
        recorder.shutdown_hook()  # what SIGINT/SIGTERM run: closes the file with its summary
    finally:
        harness.close()
    return folder / 's1.mcap', gait, total


def test_recording_is_complete_and_rosbags_reads_it(recorded):
    from rosbags.highlevel import AnyReader
    path, gait, total = recorded
    with AnyReader([path]) as reader:
        count = 0
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            count += 1
        assert message is not None
    with SessionReader(path) as session:
        metadata = session.read_metadata()
        assert session.complete and not session.truncated
    assert metadata['exo_gait.session']['patient_id'] == 'p7'
    assert metadata['exo_gait.session']['profile'] == 'hemiparesis'
    # everything published, plus the recorder's own /diagnostics status
    assert count == int(metadata['exo_gait.session_end']['messages'])
    assert total <= count <= total + 30


def test_report_numbers_behind_the_plots(recorded, tmp_path, capsys):
    path, gait, _ = recorded
    db = tmp_path / 'store.db'
    assert report_main([str(path.parent), '--out', str(tmp_path), '--store', str(db)]) == 0
    summary = json.loads((tmp_path / 's1_report.json').read_text())
    html = (tmp_path / 's1_report.html').read_text()
    assert html.count('data:image/png;base64,') == 5
    legs = summary['legs']
    assert legs['left']['strides'] >= 10 and legs['right']['strides'] >= 10
    expected_stride = normative.stride_time_s(SPEED)
    assert legs['left']['stride_time_s'] == pytest.approx(expected_stride, abs=0.01)
    from exo_common.description import load_description
    segments = kinematics.segments_from_urdf(load_description().urdf)
    mean, _ = normative.measured_band(SPEED)  # upright pelvis, as the synthetic gait
    at_strike = normative.sample(mean, np.array([0.0, 0.5]))  # leading leg at phase 0, trailing at 0.5
    expected_step = (kinematics.ankle_forward(segments['left'], at_strike[0, 0], at_strike[1, 0])
                     - kinematics.ankle_forward(segments['left'], at_strike[0, 1], at_strike[1, 1]))
    plots = summary['plots']
    for leg in ('left', 'right'):
        assert len(plots['step_length_m'][leg]) == legs[leg]['strides']
        steps = [v for _, v in plots['step_length_m'][leg] if v is not None]
        assert len(steps) >= legs[leg]['strides'] - 1
        assert np.median(steps) == pytest.approx(expected_step, abs=0.01)
        knee = np.array(plots['joint_curves_deg']['legs'][leg][1])
        assert np.max(np.abs(knee - np.degrees(mean[1]))) < 1.5  # 0.6 deg measured: stride resampling
    assert plots['joint_curves_deg']['normative']['mean_deg'][1] == pytest.approx(np.degrees(mean[1]).tolist(), abs=1e-2)
    assert all(abs(v) < 3.0 for _, v in plots['symmetry_step_length_percent'][3:])
    left_step, right_step = legs['left']['step_length_m'], legs['right']['step_length_m']
    assert summary['symmetry_percent']['step_length_m'] == pytest.approx(
        200.0 * (left_step - right_step) / (left_step + right_step))
    assert summary['speed_mps'] == pytest.approx(SPEED)
    assert summary['assistance_percent_mean'] == pytest.approx(np.mean(ASSISTANCE))
    assert [f['message'] for f in summary['faults']] == ['left_knee_joint over limit']
    assert gait.times[0] + 9.0 < summary['faults'][0]['time'] < gait.times[0] + 11.0
    assert summary['events']['left_heel_strike'] == len(plots['heel_strikes']['left'])
    rows = store.sessions(db, 'p7')
    assert [r['session_id'] for r in rows] == ['s1']
    assert rows[0]['step_length_left_m'] == pytest.approx(legs['left']['step_length_m'])


def test_truncated_recording_reports_what_was_written(recorded, tmp_path, capsys):
    path, _, _ = recorded
    cut = tmp_path / 'cut.mcap'
    data = path.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.6)])
    assert report_main([str(cut), '--no-store']) == 0
    summary = json.loads((tmp_path / 'cut_report.json').read_text())
    assert summary['truncated'] is True
    assert 0 < summary['legs']['left']['strides']
    assert 'not closed cleanly' in capsys.readouterr().err


def _fails_naming(argv, name, capsys):
    assert report_main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and name in err and 'Traceback' not in err
    return err


def test_foreign_missing_and_corrupt_files(recorded, tmp_path, capsys):
    path, _, _ = recorded
    foreign = tmp_path / 'photo.mcap'
    foreign.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(200))
    assert 'not an MCAP file' in _fails_naming([str(foreign), '--no-store'], str(foreign), capsys)
    _fails_naming([str(tmp_path / 'absent.mcap'), '--no-store'], 'absent.mcap', capsys)
    empty_dir = tmp_path / 'empty'
    empty_dir.mkdir()
    _fails_naming([str(empty_dir), '--no-store'], str(empty_dir), capsys)
    corrupt = tmp_path / 'corrupt.mcap'
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(range(64))
    corrupt.write_bytes(bytes(data))
    assert 'corrupt' in _fails_naming([str(corrupt), '--no-store'], str(corrupt), capsys)
    empty = tmp_path / 'zero.mcap'
    empty.write_bytes(b'')
    _fails_naming([str(empty), '--no-store'], str(empty), capsys)


def test_foreign_store_is_refused_and_left_untouched(recorded, tmp_path, capsys):
    path, _, _ = recorded
    text_store = tmp_path / 'notes.db'
    text_store.write_text('my notes\n' * 100)
    _fails_naming([str(path), '--out', str(tmp_path), '--store', str(text_store)], str(text_store), capsys)
    assert text_store.read_text() == 'my notes\n' * 100
    other = tmp_path / 'other.db'
    with sqlite3.connect(other) as connection:
        connection.execute('CREATE TABLE patients (name TEXT)')
    _fails_naming([str(path), '--out', str(tmp_path), '--store', str(other)], str(other), capsys)
    with sqlite3.connect(other) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ['patients']


WRITER = '''
import sys
from exo_analysis import store
summary = {"patient_id": "k", "started_utc": "", "duration_s": 60.0, "speed_mps": 0.8,
           "legs": {"left": {"step_length_m": 0.5}, "right": {"step_length_m": 0.5}},
           "symmetry_percent": {"step_length_m": 1.0}, "assistance_percent_mean": 50.0,
           "padding": "x" * 200000}
i = 0
while True:
    store.save_session(sys.argv[1], f"s{i:06d}", summary)
    i += 1
    print(i, flush=True)
'''


def test_store_survives_kill_mid_write(tmp_path):
    db = tmp_path / 'store.db'
    for attempt in range(3):
        process = subprocess.Popen([sys.executable, '-c', WRITER, str(db)], stdout=subprocess.PIPE, text=True)
        for _ in range(3 + 2 * attempt):  # let it get into its stride of writes
            process.stdout.readline()
        process.send_signal(signal.SIGKILL)
        process.wait()
        with sqlite3.connect(db) as connection:
            assert connection.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        rows = store.sessions(db, 'k')
        assert len(rows) >= 3 + 2 * attempt
        assert all(json.loads(r['summary_json'])['padding'] == 'x' * 200000 for r in rows)


def _summary(patient, started, step, symmetry, assistance, speed):
    return {'patient_id': patient, 'started_utc': started, 'duration_s': 600.0, 'speed_mps': speed,
            'legs': {'left': {'step_length_m': step, 'gps_deg': 5.0}, 'right': {'step_length_m': step}},
            'symmetry_percent': {'step_length_m': symmetry}, 'assistance_percent_mean': assistance}


def test_progress_flags_worsening_step_length(tmp_path, capsys):
    db = tmp_path / 'store.db'
    history = [(0.40, 10.0, 70.0), (0.44, 9.0, 60.0), (0.47, 8.0, 50.0), (0.48, 8.0, 50.0), (0.41, 9.0, 52.0)]
    for day, (step, symmetry, assistance) in enumerate(history, start=1):
        store.save_session(db, f'd{day}', _summary('p9', f'2024-03-0{day}', step, symmetry, assistance, 0.8))
    store.save_session(db, 'other', _summary('someone_else', '2024-03-01', 0.1, 50.0, 100.0, 0.3))
    assert progress_main(['--patient', 'p9', '--store', str(db), '--out', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'progress_p9.json').read_text())
    assert result['sessions'] == ['d1', 'd2', 'd3', 'd4', 'd5']
    assert result['trends']['step length (m)']['left'] == [s for s, _, _ in history]
    assert len(result['worsening']) == 1 and 'step length' in result['worsening'][0]
    assert 'WARNING: worsening step length' in capsys.readouterr().out
    assert (tmp_path / 'progress_p9.html').read_text().count('data:image/png;base64,') == 1
    assert progress_main(['--patient', 'nobody', '--store', str(db), '--out', str(tmp_path)]) == 1
