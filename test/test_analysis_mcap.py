"""The streaming MCAP reader's decimation: on the samples' own times, not on when they arrived."""
import numpy as np
import pytest

from exo_analysis.mcap_io import McapRecorder, SessionReader

TOPIC = '/joint_states'
PERIOD_NS = 10_000_000


def _write(path, publish_times_ns, log_times_ns, flush_every=None):
    recorder = McapRecorder(path, chunk_size=1 << 16)
    recorder.add_channel(TOPIC, 'std_msgs/msg/Float64')
    for i, (publish, log) in enumerate(zip(publish_times_ns, log_times_ns)):
        recorder.write(TOPIC, b'\x00\x01\x00\x00' + np.float64(i).tobytes(), int(log), int(publish))
        if flush_every and i % flush_every == flush_every - 1:
            recorder.flush()
    return recorder


def _kept_publish_times(path):
    with SessionReader(path) as reader:
        return [publish for _, _, publish, _ in reader.messages({TOPIC: PERIOD_NS})]


def _bursts(seconds=2.0):
    """1 kHz samples received in bursts: 100 at a time every 100 ms, all within 1 ms."""
    publish = np.arange(int(seconds * 1000)) * 1_000_000 + 10**18
    log = publish - publish % 100_000_000 + 100_000_000 + (publish % 100_000_000) // 100
    return publish, log


def test_a_burst_after_a_recorder_stall_keeps_its_samples_spread(tmp_path):
    publish, log = _bursts()
    _write(tmp_path / 'a.mcap', publish, log, flush_every=250).close()
    kept = np.array(_kept_publish_times(tmp_path / 'a.mcap'))
    assert len(kept) == pytest.approx(len(publish) / 10, abs=2)  # 100 Hz, not one per burst (10 Hz)
    assert np.all(np.diff(kept) >= PERIOD_NS)
    assert np.max(np.diff(kept)) <= 2 * PERIOD_NS


def test_truncated_file_scan_decimates_the_same_way(tmp_path):
    publish, log = _bursts()
    recorder = _write(tmp_path / 'b.mcap', publish, log, flush_every=250)
    recorder.flush()  # no close: no summary, the last chunk's indexes may be cut: scanned
    data = (tmp_path / 'b.mcap').read_bytes()
    (tmp_path / 'cut.mcap').write_bytes(data[:len(data) - 7])
    kept = np.array(_kept_publish_times(tmp_path / 'cut.mcap'))
    assert len(kept) >= 0.8 * len(publish) / 10
    assert np.all(np.diff(kept) >= PERIOD_NS)


def test_a_device_clock_reset_does_not_silence_the_stream(tmp_path):
    first = np.arange(500) * 1_000_000 + 10**18
    second = np.arange(500) * 1_000_000 + 10**17  # the device restarted its clock
    publish = np.concatenate([first, second])
    log = np.arange(1000) * 1_000_000 + 10**18
    _write(tmp_path / 'c.mcap', publish, log, flush_every=300).close()
    kept = np.array(_kept_publish_times(tmp_path / 'c.mcap'))
    assert np.sum(kept >= 10**18) == pytest.approx(50, abs=1)
    assert np.sum(kept < 10**18) == pytest.approx(50, abs=1)
