"""In-process hand-off between composed nodes (exo_common.ros.LocalPublisher) through real rclpy."""
import json
import threading
import time

import pytest
from std_msgs.msg import Float64

from exo_common.ros import PROCESS_LOCK, STREAM_QOS, ExoNode, dds_copies_deferred
from exo_common.testing import wait_until


def make_node(ros, name):
    return ros.add_node(ExoNode(name, [], context=ros.context))


def test_subscriber_made_before_the_local_publisher_is_taken_over_once(ros):
    """The simulator subscribes to the supervisor's commands before the supervisor exists."""
    subscriber, publisher_node = make_node(ros, 'early_subscriber'), make_node(ros, 'late_publisher')
    received = []
    subscriber.create_local_subscription(Float64, '/handoff', received.append, STREAM_QOS)
    publisher = publisher_node.create_local_publisher(Float64, '/handoff', STREAM_QOS)
    publisher.publish(Float64(data=1.0))
    assert [m.data for m in received] == [1.0]  # by direct call, inside publish()
    time.sleep(0.5)
    assert [m.data for m in received] == [1.0]  # and not a second time through DDS
    assert all(s.topic_name != '/handoff' for s in subscriber.subscriptions)


def test_publishing_from_another_thread_never_runs_a_callback_beside_the_executor(ros):
    """The physics thread's hand-off waits for an executor callback in progress, and vice versa."""
    node = make_node(ros, 'composed')
    inside = threading.Event()
    overlaps = []

    def slow_timer():
        inside.set()
        time.sleep(0.002)
        inside.clear()

    node.create_timer(0.003, slow_timer)
    node.create_local_subscription(Float64, '/from_thread', lambda msg: overlaps.append(inside.is_set()), STREAM_QOS)
    publisher = node.create_local_publisher(Float64, '/from_thread', STREAM_QOS)
    wait_until(inside.is_set, 5.0, 'the timer running')

    def physics():
        for _ in range(300):
            publisher.publish(Float64(data=0.0))
            time.sleep(0.0005)

    worker = threading.Thread(target=physics)
    worker.start()
    worker.join()
    assert len(overlaps) == 300
    assert not any(overlaps)
    assert PROCESS_LOCK.acquire(timeout=1.0)
    PROCESS_LOCK.release()


def test_dds_copies_deferred_go_out_once_run_and_in_order(ros):
    """The physics thread's chain: local subscribers at once, the DDS copy when the loop has
    time, and each topic in the order it was published."""
    node = make_node(ros, 'deferring')
    local = []
    publisher = node.create_local_publisher(Float64, '/deferred', STREAM_QOS)
    node.create_local_subscription(Float64, '/deferred', lambda msg: local.append(msg.data), STREAM_QOS)
    received = ros.collect(Float64, '/deferred')
    wait_until(lambda: publisher.get_subscription_count() == 2, 5.0, 'a DDS subscription beside the local one')
    pending = []
    with dds_copies_deferred(pending.append):
        publisher.publish(Float64(data=1.0))
    assert local == [1.0]
    assert len(pending) == 1
    time.sleep(0.3)
    assert received == []
    pending.pop()()
    wait_until(lambda: received, 5.0, 'the deferred copy')
    assert [m.data for m in received] == [1.0]

    with dds_copies_deferred(pending.append):
        publisher.publish(Float64(data=3.0))
    publisher.publish(Float64(data=4.0))  # outside the block: after the copy still waiting
    pending.pop()()  # already sent
    wait_until(lambda: len(received) == 3, 5.0, 'both copies')
    time.sleep(0.3)
    assert [m.data for m in received] == [1.0, 3.0, 4.0]
    assert local == [1.0, 3.0, 4.0]


def test_a_volatile_topic_no_dds_subscriber_matches_gets_no_dds_copy(ros):
    node = make_node(ros, 'unheard')
    local = []
    publisher = node.create_local_publisher(Float64, '/unheard', STREAM_QOS)
    node.create_local_subscription(Float64, '/unheard', lambda msg: local.append(msg.data), STREAM_QOS)
    pending = []
    with dds_copies_deferred(pending.append):
        publisher.publish(Float64(data=1.0))
    assert local == [1.0]
    assert pending == []
    ros.collect(Float64, '/unheard')  # a recorder joins: copies from then on
    wait_until(lambda: publisher.get_subscription_count() == 2, 5.0, 'a DDS subscription beside the local one')
    with dds_copies_deferred(pending.append):
        publisher.publish(Float64(data=3.0))
    assert len(pending) == 1


def test_a_destroyed_publisher_is_not_bound_to_later_subscribers(ros):
    gone = make_node(ros, 'gone_publisher')
    gone.create_local_publisher(Float64, '/rebound', STREAM_QOS)
    ros.executor.remove_node(gone)
    gone.destroy_node()
    live = make_node(ros, 'live_subscriber')
    received = []
    live.create_local_subscription(Float64, '/rebound', received.append, STREAM_QOS)
    other = ros.publisher(Float64, '/rebound')
    wait_until(lambda: other.get_subscription_count() > 0, 5.0, 'a DDS subscription')
    other.publish(Float64(data=2.0))
    wait_until(lambda: received, 5.0, 'the message through DDS')


def test_loop_stats_count_late_and_missing_commands():
    from exo_common.loop_stats import LoopStats
    stats = LoopStats(0.001)
    stats.start()
    base = 1_000_000_000
    for k in range(10):
        if k == 4:
            continue                                    # a sample never answered
        latency = 1_500_000 if k == 7 else 300_000      # one answered too late for its step
        stats.on_command(base + k * 1_000_000, base + k * 1_000_000 + latency)
    stats.on_command(base, base + 200_000)              # a repeat of an answered sample
    stats.on_command(base + 9_400_000, base + 9_400_100)  # a watchdog repeat: answers no sample
    # the loop's thread held off its CPU over the missing sample and before the late one
    stats.on_held_off(base + 3_600_000, base + 4_700_000, 'waking for the sample')
    stats.on_held_off(base + 5_200_000, base + 6_500_000, 'answer and device work')
    assert stats.progress() == {'commands': 10, 'late': 1}   # the repeat counts until the summary
    summary = stats.summary()
    assert summary['expected_samples'] == 10 and summary['duplicates'] == 1
    assert summary['held_off'] == 2 and summary['held_off_longest_ms'] == 1.3
    assert summary['misses_while_held_off'] == 1
    assert summary['misses_while_held_off_by_span'] == {'answer and device work': 0,
                                                        'waking for the sample': 1}
    assert summary['off_grid'] == 1
    assert summary['delivered_pct'] == 80.0
    assert summary['late_commands'] == 1 and summary['unanswered_samples'] == 1
    # 3 to 5 around the missing sample, 6 to 8 around the late one
    assert summary['longest_gap_ms'] == 2.0
    assert summary['latency_max_ms'] == 1.5
    assert summary['window_ns'] == [base, base + 10_000_000]
    assert summary['late_windows_ns'] == [[base + 4_000_000, base + 5_000_000],   # the missing one
                                          [base + 7_000_000, base + 8_500_000]]   # the late one
    json.dumps(summary)  # loop_monitor writes it as JSON


def test_loop_stats_keep_the_grid_of_a_rate_whose_period_is_not_whole_nanoseconds():
    from exo_common.loop_stats import LoopStats
    stats = LoopStats(1.0 / 1500.0)
    stats.start()
    base = 1_000_000_000
    for k in range(30_000):                             # 20 s of 1.5 kHz samples, rounded to ns
        stamp = base + round(k * 1e9 / 1500.0)
        stats.on_command(stamp, stamp + 300_000)
    summary = stats.summary()
    assert summary['off_grid'] == 0 and summary['commands'] == 30_000
    assert summary['expected_samples'] == 30_000 and summary['delivered_pct'] == 100.0
    assert summary['late_windows_ns'] == []


def test_a_thread_holding_the_process_lock_flat_out_still_lets_callbacks_in():
    """The simulator's physics loop in lock-step holds PROCESS_LOCK for each step and takes it
    again at once; callbacks queued on the lock (the controller's belt speed, EMG) must still run."""
    from exo_common.ros import guarded, let_waiting_callbacks_in
    stop = threading.Event()
    ran = []

    def physics_loop():
        while not stop.is_set():
            with PROCESS_LOCK:
                end = time.perf_counter() + 0.001       # a 1 ms step
                while time.perf_counter() < end:
                    pass
            let_waiting_callbacks_in(0.005)

    callback = guarded(lambda: ran.append(time.monotonic()))
    physics = threading.Thread(target=physics_loop)
    physics.start()
    try:
        started = time.monotonic()
        for _ in range(20):
            callback()                                  # as the executor thread would
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        physics.join()
    assert len(ran) == 20
    # each waits for at most the step in progress (1 ms); unfair, the lock kept them ~10 ms each
    assert elapsed < 0.1, f'20 callbacks took {elapsed:.3f} s beside a busy lock holder'


def test_loop_stats_summary_while_commands_keep_arriving():
    """loop_monitor summarises at shutdown while the hardware's thread still delivers commands."""
    from exo_common.loop_stats import LoopStats
    stats = LoopStats(0.001)
    stats.start()
    base = 1_000_000_000
    stop = threading.Event()

    def feed():
        k = 0
        while not stop.is_set():
            if k % 10:
                stats.on_command(base + k * 1_000_000, base + k * 1_000_000 + 300_000)
            k += 1

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        time.sleep(0.05)
        for _ in range(30):
            summary = stats.summary()
            assert len(summary['late_windows_ns']) == summary['expected_samples'] - summary['commands']
    finally:
        stop.set()
        feeder.join()


_DRIVER_SCRIPT = '''
import os, signal, sys, threading, time
from concurrent.futures import Future
from exo_common.ros import ExoNode, run_nodes

class Driven(ExoNode):
    def __init__(self):
        super().__init__('driven', [])
        self.threads = []
        self.create_timer(0.01, self.tick)

    def tick(self):
        self.threads.append(threading.current_thread().name)
        if self.threads.count('MainThread') >= 5:
            print(sorted(set(self.threads)), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

    def drive_executor(self, executor):
        driving = Future()
        def serve():
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.01)
            if sys.argv[1] == 'fail':
                driving.set_exception(RuntimeError('callback failed in the driver'))
            else:
                driving.set_result(None)
        threading.Thread(target=serve, name='driver').start()
        return driving

sys.exit(run_nodes([Driven]))
'''


@pytest.mark.parametrize('ending', ['done', 'fail'])
def test_a_node_driving_the_executor_hands_it_back_when_it_stops(ending, tmp_path):
    """The simulator's physics thread serves its process's callbacks in real time; when it stops,
    the main thread must spin again (the supervisor's watchdog timer lives there), and a
    callback's exception in the driving thread must end the process as it would on the main one."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, '-c', _DRIVER_SCRIPT, ending], capture_output=True, text=True, timeout=60)
    if ending == 'done':
        assert done.returncode == 0, done.stderr
        assert "['MainThread', 'driver']" in done.stdout  # callbacks on the driver, then on the main thread
    else:
        assert done.returncode != 0
        assert 'callback failed in the driver' in done.stderr


def test_the_clock_read_directly_is_the_nodes_clock_on_system_and_on_simulated_time(ros):
    from rclpy.time import Time

    from exo_common.ros import now_sec
    node = make_node(ros, 'clock_reader')
    before = node.get_clock().now().nanoseconds * 1e-9
    assert before <= now_sec(node) <= node.get_clock().now().nanoseconds * 1e-9
    clock = node.get_clock()
    clock._set_ros_time_is_active(True)  # what use_sim_time does once /clock arrives
    try:
        clock.set_ros_time_override(Time(seconds=12, nanoseconds=500_000_000))
        assert now_sec(node) == 12.5
    finally:
        clock._set_ros_time_is_active(False)
