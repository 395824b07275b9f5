"""The runner's own ROS node: enables the supervisor, watches the session, prints progress."""
import faulthandler
import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool

from exo_common.diagnostics import Level
from exo_common.ros import DIAGNOSTICS_QOS, LATCHED_QOS, STREAM_QOS, make_executor

STARTUP_TIMEOUT_S = 60.0
PROGRESS_PERIOD_S = 1.0
SETTLE_S = 3.0  # after every node is up (start-up imports done), before torque may be enabled
TEARDOWN_TIMEOUT_S = 20  # whole seconds (signal.alarm)


class SessionMonitor:
    """Watches a running stack through its topics and services."""

    def __init__(self, use_sim_time: bool = False):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node('exo_gait_runner', context=self.context,
                         parameter_overrides=[Parameter('use_sim_time', value=use_sim_time)])
        self.safety_state = None
        self.heel_strikes = 0
        self.assistance = None
        self.errors: list[str] = []
        self.started_at = None
        self.enabled_at = None
        self.ended_in_fault = False
        self._lock = threading.Lock()
        node = self.node
        node.create_subscription(String, '/safety_supervisor/state', self._on_state, LATCHED_QOS)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, DIAGNOSTICS_QOS)
        node.create_subscription(Float64MultiArray, '/gait_controller/assistance_per_joint',
                                 self._on_assistance, LATCHED_QOS)
        self._subscribe_events()
        self.enable_client = node.create_client(SetBool, '/safety_supervisor/enable')
        self.executor = make_executor(self.context)
        self.executor.add_node(node)
        self._stop_spin = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok() and not self._stop_spin.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _subscribe_events(self):
        self.node.create_subscription(JointState, '/gait/events', self._on_event, STREAM_QOS)

    def _on_event(self, msg):
        if any(name.endswith('_heel_strike') for name in msg.name):
            self.heel_strikes += 1

    def _on_state(self, msg):
        self.safety_state = msg.data
        if msg.data == 'FAULT':
            self.ended_in_fault = True

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.level[0] >= Level.ERROR and status.name.startswith('safety_supervisor'):
                entry = f'{status.name}: {status.message}'
                with self._lock:
                    if entry not in self.errors:
                        self.errors.append(entry)

    def _on_assistance(self, msg):
        if len(msg.data) == 6:  # left hip, knee, ankle, right hip, knee, ankle
            self.assistance = (sum(msg.data[:3]) / 3.0, sum(msg.data[3:]) / 3.0)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _call(self, client, request, timeout=2.0):
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        return future.result() if future.done() else None

    def _enable(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            response = self._call(self.enable_client, SetBool.Request(data=True))
            if response is not None and response.success:
                return True
            time.sleep(0.5)
        return False

    def _wait_for_nodes(self, names, deadline: float, stop: threading.Event) -> bool:
        """Every node of the graph is up (start-up load has passed), then a short settle time."""
        while time.monotonic() < deadline and not stop.is_set():
            if set(names) <= set(self.node.get_node_names()):
                time.sleep(SETTLE_S)
                return True
            time.sleep(0.1)
        return False

    def run(self, duration: float, processes: dict, stop: threading.Event, node_names=()) -> int:
        """Enable, then watch until duration, a fault, a dead process or stop. Returns exit code."""
        from exo_common.runner import EXIT_CLEAN, EXIT_FAULT, EXIT_STARTUP
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        if not self._wait_for_nodes(node_names, deadline, stop) and not stop.is_set():
            missing = sorted(set(node_names) - set(self.node.get_node_names()))
            print(f'exo-gait sim: nodes did not come up: {", ".join(missing)} (see the logs folder)',
                  file=sys.stderr)
            return EXIT_STARTUP
        if not self._enable(deadline) or stop.is_set():
            if stop.is_set():
                return EXIT_CLEAN
            print('exo-gait sim: the safety supervisor could not be enabled '
                  '(see the logs folder)', file=sys.stderr)
            return EXIT_STARTUP
        self.started_at = self.now()
        next_print = time.monotonic()
        while not stop.is_set():
            dead = [name for name, process in processes.items() if process.poll() is not None]
            if dead:
                print(f'\nexo-gait sim: process group(s) {", ".join(dead)} exited', file=sys.stderr)
                return EXIT_STARTUP
            if self.ended_in_fault:
                self._progress(final=True)
                print('\nexo-gait sim: safety FAULT, session stopped', file=sys.stderr)
                return EXIT_FAULT
            if self.elapsed() >= duration:
                break
            if time.monotonic() >= next_print:
                self._progress()
                next_print += PROGRESS_PERIOD_S
            time.sleep(0.02)
        self._progress(final=True)
        return EXIT_CLEAN

    def elapsed(self) -> float:
        return 0.0 if self.started_at is None else max(0.0, self.now() - self.started_at)

    def _progress(self, final: bool = False) -> None:
        assistance = ('-' if self.assistance is None
                      else f'L {self.assistance[0]:5.1f} % R {self.assistance[1]:5.1f} %')
        line = (f't {self.elapsed():6.1f} s  strides {self.heel_strikes // 2:4d}  '
                f'assistance {assistance}  safety {self.safety_state or "-"}  '
                f'faults {len(self.errors)}')
        if sys.stdout.isatty():
            print('\r' + line, end='\n' if final else '', flush=True)
        else:
            print(line, flush=True)

    def torque_off(self) -> None:
        """Disable the supervisor (zero torque or damping) before anything is stopped."""
        if self.safety_state in ('ENABLED',):
            self._call(self.enable_client, SetBool.Request(data=False), timeout=1.0)
            deadline = time.monotonic() + 1.0
            while self.safety_state == 'ENABLED' and time.monotonic() < deadline:
                time.sleep(0.01)

    def summary(self, outcome: int, interrupted: bool) -> dict:
        from exo_common.runner import EXIT_CLEAN, EXIT_FAULT
        return {
            'outcome': {EXIT_CLEAN: 'clean', EXIT_FAULT: 'fault'}.get(outcome, 'failed'),
            'stopped_by_signal': interrupted,
            'duration_s': round(self.elapsed(), 2),
            'strides': self.heel_strikes // 2,
            'assistance_percent_left': None if self.assistance is None else round(self.assistance[0], 1),
            'assistance_percent_right': None if self.assistance is None else round(self.assistance[1], 1),
            'final_safety_state': self.safety_state,
            'safety_errors': list(self.errors),
        }

    def close(self) -> None:
        """Leave ROS. Call it last: rclpy's teardown can deadlock inside Fast DDS (seen once in
        hundreds of sessions: deleting the rosout writer waits for the event thread, which waits
        for discovery's lock), so a teardown that has not ended within TEARDOWN_TIMEOUT_S ends the
        process (SIGALRM, exit status 142) after printing every thread's stack."""
        self._stop_spin.set()
        self._thread.join(timeout=2.0)
        guarded = threading.current_thread() is threading.main_thread()
        if guarded:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            faulthandler.dump_traceback_later(TEARDOWN_TIMEOUT_S - 1)
            signal.alarm(TEARDOWN_TIMEOUT_S)
        try:  # destroying the node deletes DDS writers too, where the same deadlock can strike
            self.executor.remove_node(self.node)
            self.node.destroy_node()
            rclpy.shutdown(context=self.context)
        finally:
            if guarded:
                signal.alarm(0)
                faulthandler.cancel_dump_traceback_later()
