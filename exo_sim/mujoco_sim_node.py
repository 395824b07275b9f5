"""mujoco_sim: the hardware boundary emulated on MuJoCo (thin rclpy shell over ExoSimulation).

Publishes /hw/joint_states (control_rate_hz), /hw/imu/<frame> (imu.rate_hz), /hw/emg (100 Hz
batches), /hw/treadmill/speed (10 Hz), /clock (every step in lock-step, 100 Hz in real time),
~/truth/{patient_torque, phase, heel_strike}, ~/held_off (real time: when the physics thread
got no CPU for 0.5 ms while it should have run; exo_common.held_off) and /diagnostics; subscribes
/effort_controller/commands and /safety_supervisor/state. The physics runs in its own thread
and publishes from there, holding the process lock (exo_common.ros.PROCESS_LOCK) through each
step, so the executor's callbacks (commands, parameters, other nodes' timers) run between
steps, never inside one. Composed with the control loop (the embedded runner's default), each
encoder sample runs the encoder node, the controller and the supervisor by direct call in the
physics thread, and their command comes back the same way; the DDS copies of their messages
go out in the control period's spare time.

Pacing: see MujocoSimNode._physics_loop.
"""
import collections
import functools
import math
import os
import sys
import threading
import time
from concurrent.futures import Future
from typing import Optional

from builtin_interfaces.msg import Time as TimeMsg
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState, TimeReference
from std_msgs.msg import Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from exo_common.cdr import JointTrajectoryEncoder
from exo_common.diagnostics import Level, Report
from exo_common.held_off import HeldOffSpans
from exo_common.joints import EMG_CHANNELS, IMU_FRAMES, JOINT_NAME_LIST, LEGS
from exo_common.params import ParamSpec
from exo_common.ros import (LATCHED_QOS, MONITOR_QOS, PROCESS_LOCK, STREAM_QOS, ExoNode,
                            dds_copies_deferred, let_waiting_callbacks_in, node_main, ns_to_stamp,
                            stamp_to_ns)
from exo_sim.settings import NODE_NAME, PARAM_SPECS, simulation_kwargs
from exo_sim.simulation import ExoSimulation
from exo_sim.spare_time import SpareTimeWork

TREADMILL_RATE_HZ = 10.0
DIAGNOSTICS_PERIOD_S = 1.0
REALTIME_CLOCK_PERIOD_S = 0.01
VIEWER_PERIOD_S = 1.0 / 30.0
# Device work (EMG generation; IMU, EMG, treadmill, truth and status messages; the DDS copies
# of the control chain's messages, exo_common.ros.dds_copies_deferred) is done in what
# is left of a control period after the loop answered, ending this long before the next sample
# is due: the physics step up to that sample comes first.
PHYSICS_RESERVE_S = 0.0003
# Device work waiting beyond this many items runs regardless of the deadline (at 1 kHz each
# period adds about six: the control chain's four DDS copies, IMU, EMG, truth): a slow moment
# of the machine postpones it by about ten periods at most.
DEVICE_WORK_BACKLOG = 60
SPARE_TIME_LOCKSTEP_S = 0.0006  # lock-step: spare time after a step's start
LOCKSTEP_CALLBACK_WAIT_S = 0.005  # lock-step: longest wait for callbacks queued on the process lock
LOCKSTEP_IMU_PERIODS = 3  # lock-step: how far the processed pelvis IMU may trail the simulation
# Real time, driving the executor: rclpy's events executor wakes 70-100 us after a spin_once
# timeout (measured, SCHED_FIFO), so it is given the idle time up to SPIN_MARGIN_S before the
# next sample, and the rest is waited out without sleeping (on this machine a sleep of 0.1 ms
# woke 46 us late at the median and cost the thread 31 us of CPU); a loop behind schedule (no
# idle time) still serves up to CALLBACKS_PER_ROUND callbacks every CALLBACKS_BEHIND_S (an
# empty spin_once costs about 28 us).
SPIN_MARGIN_S = 0.0001
CALLBACKS_BEHIND_S = 0.005
CALLBACKS_PER_ROUND = 8
# Real time, behind schedule: which samples are still sent (MujocoSimNode._answerable), judged
# by the median of the last RESPONSES_KEPT sample-to-command times
RESPONSES_KEPT = 15
MAX_EXPECTED_RESPONSE = 0.75  # control periods: a sample less late than a quarter period always goes
# Real time, further behind than this the schedule slips (stamps stay current, as a real device's
# would) and the simulated world waits instead of running on the last command: held for
# several periods while the computer stalled, the full-assistance controller's torques (up to
# 120 Nm) drove a knee past its velocity limit (a 500 Hz session with 6-14 ms holds, measured).
MAX_LAG_PERIODS = 2
MAX_LAG_S = 0.005  # lock-step: further behind real time than this, carry on slower

PARAMETERS = [
    *PARAM_SPECS,
    ParamSpec('viewer', False, 'Open a MuJoCo viewer window on the simulation (needs a display)',
              read_only=True),
    ParamSpec('control_rate_hz', 1000.0,
              'Rate of the encoder samples and of the command updates (zero-order hold between); '
              'the physics keeps its own step', 'Hz', 50.0, 5000.0, read_only=True),
    ParamSpec('lockstep.max_real_time_factor', 1.0,
              'Lock-step (simulated time, nodes on use_sim_time): never run faster than this '
              'multiple of real time (0 = as fast as the loop answers)', '', 0.0, 100.0,
              read_only=True),
    ParamSpec('treadmill.start_delay_s', 1.0,
              'With follow_safety: time from ENABLED to the belt starting, for the orthosis to '
              'engage and take up the posture', 's', 0.0, 10.0),
    ParamSpec('treadmill.follow_safety', True,
              'Belt and patient walk only while /safety_supervisor/state is ENABLED and stop with '
              'it, as a Lokomat treadmill stops with its orthosis (false: walk from the start)',
              read_only=True),
]


class MujocoSimNode(ExoNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, PARAMETERS, **kwargs)
        params = self.params
        # Device stamps start at the wall clock; kept in integer ns (float s has only ~0.2 us
        # resolution today), the simulation itself counts from zero.
        self._origin_ns = time.time_ns()
        self.sim = ExoSimulation(**simulation_kwargs(params, time_origin=0.0))
        self._lockstep = params['pacing'] == 'lockstep'
        # On simulated time (lock-step) nodes run on /clock, so it ticks every step; on the wall
        # clock nobody needs it at the physics rate (each message costs every node of the stack),
        # 100 Hz serves a use_sim_time viewer.
        self._realtime_clock_steps = max(1, round(REALTIME_CLOCK_PERIOD_S / params['timestep_s']))
        self._control_steps = max(1, round(1.0 / (params['control_rate_hz'] * params['timestep_s'])))
        self._control_period_s = self._control_steps * params['timestep_s']
        # published from the physics thread; in-process subscribers (the encoder node, when the
        # runner composes the loop into one process) are called there, holding the process lock
        self._joint_pub = self.create_local_publisher(JointState, '/hw/joint_states', STREAM_QOS)
        self._imu_pubs = {f: self.create_publisher(Imu, f'/hw/imu/{f}', STREAM_QOS) for f in IMU_FRAMES}
        self._emg_pub = self.create_publisher(JointTrajectory, '/hw/emg', STREAM_QOS)
        self._speed_pub = self.create_publisher(Float64, '/hw/treadmill/speed', STREAM_QOS)
        self._clock_pub = self.create_publisher(Clock, '/clock', STREAM_QOS)
        self._torque_truth_pub = self.create_publisher(JointState, '~/truth/patient_torque', STREAM_QOS)
        self._phase_truth_pub = self.create_publisher(JointState, '~/truth/phase', STREAM_QOS)
        self._strike_truth_pub = self.create_publisher(TimeReference, '~/truth/heel_strike', STREAM_QOS)
        # real time: each time the physics thread got no CPU for HELD_OFF_S while it should have
        # run (loop_monitor sets them beside the late commands)
        self._held_off_pub = self.create_local_publisher(TimeReference, '~/held_off', MONITOR_QOS)
        self._held_off = None  # HeldOffSpans of the physics thread, in real time

        self._latest_command = None   # (values, sim time received)
        self._command_count = 0
        self._command_arrived = threading.Condition()
        self.create_local_subscription(Float64MultiArray, '/effort_controller/commands', self._on_command, STREAM_QOS)
        self._pelvis_seen_ns = None   # stamp of the newest processed pelvis IMU sample (lock-step)
        if self._lockstep:
            self.create_subscription(Imu, '/imu/pelvis_imu', self._on_pelvis_imu, STREAM_QOS)

        self._imu_msgs = {}
        self._device_work = SpareTimeWork(max_backlog=DEVICE_WORK_BACKLOG)
        self._emg_batches: collections.deque = collections.deque()
        for frame in IMU_FRAMES:
            msg = Imu()
            msg.header.frame_id = frame
            msg.orientation_covariance[0] = -1.0
            self._imu_msgs[frame] = msg
        batch = self.sim.options.emg_batch_samples
        # a batch's JointTrajectory, serialized directly (a seventh of the cost of the message)
        self._emg_encoder = JointTrajectoryEncoder(list(EMG_CHANNELS))
        self._emg_times = [(0, int(round(k * 1e9 / self.sim.emg_fs))) for k in range(batch)]
        self._strikes_published = {leg: 0 for leg in LEGS}
        self._slips = 0
        self._samples_skipped = 0
        self._sample_sent_at = None
        self._responses = collections.deque(maxlen=RESPONSES_KEPT)  # sample to command, s
        self._response_s = 0.0  # their median
        self._next_view = 0.0
        self._active_problems = ()
        self._viewer = self._open_viewer() if params['viewer'] else None
        self._walk_at = None
        self._supervisor_enabled = False
        if params['treadmill.follow_safety']:
            self.sim.set_walking(False)
        self.create_subscription(String, '/safety_supervisor/state', self._on_safety_state, LATCHED_QOS)
        self._stop = threading.Event()
        self._executor = None  # served from the physics thread when run_nodes hands it over
        self._served_at = time.monotonic()
        self._driving = Future()
        self._thread = threading.Thread(target=self._run, name='mujoco_sim_physics', daemon=True)
        self._thread.start()

    def _open_viewer(self):
        if sys.platform.startswith('linux') and not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            # MuJoCo ends the whole process when GLFW cannot start, so never try without a display
            self.get_logger().warning('viewer requested but there is no display: running headless')
            return None
        try:
            import mujoco.viewer
            return mujoco.viewer.launch_passive(self.sim.model, self.sim.data,
                                                show_left_ui=False, show_right_ui=False)
        except Exception as exc:  # no display, no OpenGL: the simulation runs on without a window
            self.get_logger().warning(f'viewer unavailable, running headless: {exc}')
            self.publish_diagnostics([Report(f'{NODE_NAME}: viewer', Level.WARN, f'viewer unavailable: {exc}')])
            return None

    def _sync_viewer(self, now: float) -> None:
        if now < self._next_view:
            return
        self._next_view = now + VIEWER_PERIOD_S
        if not self._viewer.is_running():
            self._viewer = None
            return
        with self._viewer.lock():
            self._viewer.sync()

    # --- executor side ---------------------------------------------------------------------

    def _on_safety_state(self, msg: String) -> None:
        self._supervisor_enabled = msg.data == 'ENABLED'
        if not self.params['treadmill.follow_safety']:
            return
        if msg.data == 'ENABLED':
            if not self.sim.walking and self._walk_at is None:  # the orthosis engages first
                self._walk_at = self.sim.time + self.params['treadmill.start_delay_s']
        else:
            self._walk_at = None
            if self.sim.walking:
                self.get_logger().info('treadmill and patient stop')
                self.sim.set_walking(False)

    def _start_walking_when_due(self) -> None:
        if self._walk_at is not None and self.sim.time >= self._walk_at:
            self._walk_at = None
            self.get_logger().info('treadmill and patient start walking')
            self.sim.set_walking(True)

    def _on_pelvis_imu(self, msg: Imu) -> None:
        with self._command_arrived:
            self._pelvis_seen_ns = stamp_to_ns(msg.header.stamp)
            self._command_arrived.notify()

    def _on_command(self, msg: Float64MultiArray) -> None:
        sent = self._sample_sent_at
        if sent is not None:
            self._sample_sent_at = None
            responses = self._responses
            responses.append(time.monotonic() - sent)
            self._response_s = sorted(responses)[len(responses) // 2]
        with self._command_arrived:
            self._latest_command = (list(msg.data), self.sim.time)  # a local message is not ours to keep
            self._command_count += 1
            self._command_arrived.notify()

    def drive_executor(self, executor) -> Optional[Future]:
        """In real time, the physics thread serves the process's callbacks while it waits for the
        next sample. Measured at 1 kHz, two pairs of 60 s runs: 98.8 / 99.7 % of commands in time
        against 97.1 / 99.4 % with the main thread spinning, the loop's process at 77 % of a core
        against 82-92 %. Lock-step keeps the executor on the main thread (it waits on callbacks
        of other processes while holding no schedule)."""
        if self._lockstep or not self._thread.is_alive():
            return None
        self._executor = executor
        return self._driving

    def _idle_until(self, deadline: float, done=None) -> None:
        """Until the monotonic deadline, or until done() holds: serving the executor's callbacks
        when this thread drives it, else waiting."""
        executor = self._executor
        if executor is None:
            if done is None:
                time.sleep(max(0.0, deadline - time.monotonic()))
            else:
                self._wait_for(done, deadline - time.monotonic())
            return
        try:
            now = time.monotonic()
            if deadline <= now or (done is not None and done()):
                # a loop behind schedule has no idle time: it must not starve the callbacks (the
                # supervisor would see the pelvis IMU go stale)
                if now - self._served_at > CALLBACKS_BEHIND_S:
                    for _ in range(CALLBACKS_PER_ROUND):
                        executor.spin_once(timeout_sec=0.0)
                    self._served_at = time.monotonic()
                return
            while not self._stop.is_set() and not (done is not None and done()):
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    break
                if done is None and remaining <= SPIN_MARGIN_S:
                    while time.monotonic() < deadline:
                        pass  # a second sleep would wake later still, and costs more than this
                    break
                # a command that is still to come (another process) is worth the late wake-up
                executor.spin_once(timeout_sec=remaining if done is not None else remaining - SPIN_MARGIN_S)
            self._served_at = time.monotonic()
        except Exception as exc:  # run_nodes raises it; the main thread spins from now on
            self._executor = None
            self._driving.set_exception(exc)

    def _wait_for(self, done, timeout_s: float) -> None:
        """Until done() holds (checked when a command or pelvis IMU arrives) or stop, at most timeout_s."""
        with self._command_arrived:
            self._command_arrived.wait_for(lambda: done() or self._stop.is_set(), timeout=max(0.0, timeout_s))

    def check_parameters(self, candidate: dict) -> Optional[str]:
        steps = 1.0 / (candidate['control_rate_hz'] * candidate['timestep_s'])
        if round(steps) < 1 or abs(steps - round(steps)) > 1e-6:
            return (f'control_rate_hz {candidate["control_rate_hz"]} Hz must be the physics rate '
                    f'(1 / timestep_s = {1.0 / candidate["timestep_s"]:g} Hz) divided by a whole number')
        return None

    def on_parameters_changed(self, changed: dict) -> None:
        if 'treadmill.speed_kmh' in changed:
            self.sim.set_speed_kmh(changed['treadmill.speed_kmh'])
        if 'bws.percent' in changed:
            self.sim.set_bws_percent(changed['bws.percent'])
        if 'actuator.bandwidth_hz' in changed:
            self.sim.set_actuator_bandwidth(changed['actuator.bandwidth_hz'])

    def shutdown_hook(self) -> None:
        self._stop.set()
        with self._command_arrived:
            self._command_arrived.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def destroy_node(self):
        self.shutdown_hook()
        return super().destroy_node()

    # --- physics thread --------------------------------------------------------------------

    def _command_now(self):
        """The command to apply now, or zeros with the reason recorded."""
        sim = self.sim
        latest = self._latest_command
        timeout = self.params['command_timeout_s']
        if latest is None:
            sim.problems.raise_('command_timeout', Level.WARN, 'no command received yet: zero torque')
            return sim._zero
        values, received = latest
        age = sim.time - received
        if age > timeout:
            # An error while the supervisor drives the legs; before it enables (start-up, the
            # safe state's repeats on a clock still settling) zero torque is what it asks for.
            level = Level.ERROR if self._supervisor_enabled else Level.WARN
            sim.problems.raise_('command_timeout', level,
                                f'no command for {age:.3f} s (timeout {timeout} s): zero torque', age_s=age)
            return sim._zero
        sim.problems.clear('command_timeout')
        return values

    def _run(self) -> None:
        try:
            self._physics_loop()
            with PROCESS_LOCK:
                self._device_work.run(math.inf)  # nothing sampled is lost at the end
        finally:
            self._executor = None
            if not self._driving.done():
                self._driving.set_result(None)

    def _physics_loop(self) -> None:
        """The physics loop.

        Each cycle integrates the interval up to the next sample with the newest command, as soon
        as the command answering the previous sample is in, then sends the sample when it is due:
        the simulator's own computing is not charged to the loop's latency, as the real world's
        physics is not.

        realtime: a sample every control period of the wall clock, stamps on the wall clock; a
        command that has not arrived when its interval must be integrated (the next sample is
        due) misses it; behind schedule, a sample that cannot be answered in time is not sent
        (_answerable), and a loop more than MAX_LAG_PERIODS behind slips by whole control periods
        (as a real device's clock keeps running).
        lockstep: after each control sample, wait (up to lockstep.wait_s) for the command
        answering it, so every command reaches its physics step, and at each IMU sample for the
        processed pelvis IMU of a few samples before (once that stream exists); time is simulated time
        (/clock every step, nodes on use_sim_time), never faster than max_real_time_factor
        (0 = as fast as the loop answers). A slow computer makes the session slower, never
        different.
        """
        sim = self.sim
        wall_start = time.monotonic()
        sim_start = sim.time
        if not self._lockstep:  # device time = wall clock when the loop starts, not at construction
            self._origin_ns = time.time_ns() - int(round(sim.time * 1e9))
        factor = 1.0 if not self._lockstep else self.params['lockstep.max_real_time_factor']
        window = (time.monotonic(), sim.time)
        seen_commands = self._command_count
        held_off = self._held_off = HeldOffSpans() if not self._lockstep else None
        while not self._stop.is_set():
            if not self._lockstep:
                # the answer to the last sample (in this thread when the loop is composed with
                # the simulator, else from the executor), at the latest when the next is due
                self._idle_until(wall_start + (sim.time + sim.dt - sim_start),
                                 lambda: self._command_count != seen_commands)
                seen_commands = self._command_count
                held_off.begin()  # waiting for another process's answer is not this thread's time
            failed = False
            with PROCESS_LOCK:
                self._start_walking_when_due()
                try:
                    sim.advance(self._command_now())
                except Exception as exc:  # keep emulating hardware; say what went wrong
                    self._report_step_failure(exc)
                    failed = True
            if held_off is not None:
                self._note_held_off(held_off.end(), 'physics step')
            if factor > 0.0:
                # wait for the moment the sample is taken: it goes out at its own time stamp
                due = wall_start + (sim.time - sim_start) / factor
                delay = due - time.monotonic()
                if delay > 0.0:
                    self._idle_until(due)
                elif not self._lockstep and delay < -MAX_LAG_PERIODS * self._control_period_s:
                    # skip whole control periods: stamps stay on the wall clock and on the
                    # sample grid
                    period = self._control_period_s
                    skipped = math.ceil(-delay / period) * period
                    wall_start += skipped
                    self._origin_ns += int(round(skipped * 1e9))
                    self._slips += 1
                    due += skipped
                elif self._lockstep and delay < -MAX_LAG_S:  # behind real time: carry on, slower
                    wall_start -= delay
                if held_off is not None:
                    self._note_held_off(held_off.end(due), 'waking for the sample')
            with PROCESS_LOCK:
                if self._lockstep:  # simulated time keeps no schedule: spare time from now
                    deadline = time.monotonic() + SPARE_TIME_LOCKSTEP_S
                else:
                    deadline = due + sim.dt - PHYSICS_RESERVE_S
                try:
                    self._publish_step(deadline, due)
                except Exception as exc:
                    self._report_step_failure(exc)
                    failed = True
                if held_off is not None:
                    self._note_held_off(held_off.end(), 'answer and device work')
                now = time.monotonic()
                if self._viewer is not None:
                    self._sync_viewer(now)
                if now - window[0] >= DIAGNOSTICS_PERIOD_S:
                    self._device_work.add(functools.partial(
                        self._publish_status, (sim.time - window[1]) / (now - window[0])))
                    window = (now, sim.time)
            if failed:
                time.sleep(0.1)
            if self._lockstep:  # running flat out, it would hardly ever let the executor in
                let_waiting_callbacks_in(LOCKSTEP_CALLBACK_WAIT_S)
            if self._lockstep and self._supervisor_enabled and sim.steps % self._control_steps == 0:
                # only an enabled supervisor answers every sample; otherwise its timer alone
                # publishes, which on simulated time needs the clock to move on
                self._wait_for(lambda: self._command_count != seen_commands, self.params['lockstep.wait_s'])
                seen_commands = self._command_count
            if self._lockstep and self._pelvis_seen_ns is not None and sim.steps % sim.imu_period_steps == 0:
                # The pelvis IMU feeds the supervisor's watchdog through the IMU node, another
                # process: on simulated time it is lock-stepped too, at most LOCKSTEP_IMU_PERIODS
                # behind (a busy machine - a probe, a plot - must not make it look stale).
                lag_s = LOCKSTEP_IMU_PERIODS * sim.imu_period_steps * sim.dt
                due_ns = self._origin_ns + int(round((sim.time - lag_s) * 1e9))
                self._wait_for(lambda: self._pelvis_seen_ns >= due_ns, self.params['lockstep.wait_s'])

    def _note_held_off(self, interval, source: str) -> None:
        if interval is not None:
            start_ns, end_ns = interval
            msg = TimeReference(source=source, time_ref=ns_to_stamp(end_ns))
            msg.header.stamp = ns_to_stamp(start_ns)
            self._device_work.add(functools.partial(self._held_off_pub.publish, msg))

    def _answerable(self, due: float) -> bool:
        """Whether the control sample due now can still be answered before the next one is due,
        going by the median of the recent sample-to-command times. Behind schedule, one that
        cannot is not sent (it counts as missed): its answer would come too late for its physics
        step and hold the loop behind for the samples after it. Measured at 1 kHz: a backlog of
        old samples, answered one by one, kept the loop late for tens of periods after a stall
        of the machine, and of the samples sent 0.7-1.0 ms late 49 of 51 were answered late. A
        real device's register, likewise, holds only its newest sample. The median, because a
        stall of the machine in the middle of one answer is not the loop's usual speed: a mean
        it inflated held back samples that could still be answered while the loop caught up."""
        expected = min(self._response_s, MAX_EXPECTED_RESPONSE * self._control_period_s)
        return time.monotonic() + expected < due + self._control_period_s

    def _report_step_failure(self, exc: Exception) -> None:
        self.get_logger().error(f'simulation step failed: {exc!r}')
        self.publish_diagnostics([Report(f'{NODE_NAME}: simulation', Level.ERROR, f'step failed: {exc!r}')])

    def _stamp(self, sim_seconds: float) -> TimeMsg:
        nanoseconds = self._origin_ns + int(round(sim_seconds * 1e9))
        return ns_to_stamp(nanoseconds)

    def _publish_step(self, deadline: float, due: float) -> None:
        sim = self.sim
        stamp = self._stamp(sim.time)
        if self._lockstep or sim.steps % self._realtime_clock_steps == 0:
            self._clock_pub.publish(Clock(clock=stamp))
        if sim.steps % self._control_steps == 0:
            if self._lockstep or self._answerable(due):
                sample = sim.encoders()
                msg = JointState(name=JOINT_NAME_LIST, position=sample.position.tolist(), effort=sample.effort.tolist())
                msg.header.stamp = stamp
                self._sample_sent_at = time.monotonic()
                with dds_copies_deferred(self._device_work.add):  # the control loop answers first
                    self._joint_pub.publish(msg)
            else:
                self._samples_skipped += 1
        sim.sample_devices()

        # The devices' messages are built and published in the step's spare time (stamps
        # unchanged): all at once they cost the step that sampled them most of a millisecond,
        # and the next encoder sample its time.
        work = self._device_work
        for imu in sim.imus():
            work.add(functools.partial(self._publish_imu, imu))
        steps = sim.steps
        if steps % sim.emg_period_steps == 0:
            work.add(sim.prepare_emg)
            work.add(self._make_emg)
            work.add(self._publish_emg)
        if steps % max(1, round(1.0 / (TREADMILL_RATE_HZ * sim.dt))) == 0:
            work.add(functools.partial(self._speed_pub.publish, Float64(data=float(sim.belt_speed))))
        truth_rate = self.params['truth.rate_hz']
        if truth_rate > 0.0 and steps % max(1, round(1.0 / (truth_rate * sim.dt))) == 0:
            work.add(functools.partial(self._publish_truth, stamp, sim.truth()))
        work.run(deadline)

        active = tuple(key for key, _ in sim.problems.items())
        if active != self._active_problems:
            self._active_problems = active
            self._publish_status(None)

    def _publish_imu(self, imu) -> None:
        msg = self._imu_msgs[imu.frame]
        msg.header.stamp = self._stamp(imu.stamp)
        accel, gyro = imu.accel, imu.gyro
        msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (
            float(accel[0]), float(accel[1]), float(accel[2]))
        msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (
            float(gyro[0]), float(gyro[1]), float(gyro[2]))
        self._imu_pubs[imu.frame].publish(msg)

    def _make_emg(self) -> None:
        batch = self.sim.emg()
        if batch is not None:
            self._emg_batches.append(batch)

    def _publish_emg(self) -> None:
        if not self._emg_batches:
            return
        batch = self._emg_batches.popleft()
        stamp = self._stamp(batch.stamp)
        self._emg_pub.publish(self._emg_encoder.encode(stamp.sec, stamp.nanosec, batch.samples.tolist(),
                                                       self._emg_times))

    def _publish_truth(self, stamp, truth) -> None:
        msg = JointState(name=JOINT_NAME_LIST, position=truth.joint_position.tolist(),
                         velocity=truth.joint_velocity.tolist(),
                         effort=(truth.patient_torque + truth.spastic_torque).tolist())
        msg.header.stamp = stamp
        self._torque_truth_pub.publish(msg)
        msg = JointState(name=list(LEGS), position=truth.phase.tolist(),
                         effort=[float(c) for c in truth.contact])
        msg.header.stamp = stamp
        self._phase_truth_pub.publish(msg)
        for leg in LEGS:
            strikes = truth.heel_strikes[leg]
            for when in strikes[self._strikes_published[leg]:]:
                event = TimeReference(source=leg, time_ref=self._stamp(when))
                event.header.stamp = event.time_ref
                self._strike_truth_pub.publish(event)
            self._strikes_published[leg] = len(strikes)

    def _publish_status(self, real_time_factor) -> None:
        sim = self.sim
        values = {'sim_time_s': f'{sim.time:.3f}', 'pacing': self.params['pacing'],
                  'belt_speed_mps': f'{sim.belt_speed:.3f}', 'bws_percent': f'{sim.bws_percent:.1f}',
                  'patient': sim.profile.name, 'schedule_slips': self._slips,
                  'samples_not_sent_behind_schedule': self._samples_skipped}
        if self._held_off is not None:
            values['physics_thread_held_off'] = self._held_off.count
            values['physics_thread_held_off_longest_ms'] = f'{1e3 * self._held_off.longest_s:.2f}'
        if real_time_factor is not None:
            values['real_time_factor'] = f'{real_time_factor:.3f}'
        level = Level.OK
        message = 'running'
        if not self._lockstep and real_time_factor is not None and real_time_factor < 0.95:
            level, message = Level.WARN, f'running slower than real time (factor {real_time_factor:.2f})'
        self.publish_diagnostics([
            Report(f'{NODE_NAME}: simulation', level, message, values),
            sim.problems.summary(f'{NODE_NAME}: commands', 'commands ok'),
        ])


def main():
    node_main(MujocoSimNode)


if __name__ == '__main__':
    main()
