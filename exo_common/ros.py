"""The thin rclpy layer every exo_gait node shares: QoS, stamps, parameters, diagnostics, spin.

QoS choices (docs/INTERFACES.md has the table):
- STREAM: sensor and command streams up to 1 kHz. RELIABLE, KEEP_LAST 10: depth 1 loses
  messages whenever a Python callback falls behind (measured), and reliable lets recorders
  keep everything; a best-effort subscriber (Foxglove, rqt_plot) still matches.
- LATCHED: slowly changing state (safety state, assistance map): TRANSIENT_LOCAL depth 1, so a
  late joiner gets the current value.
- MONITOR: BEST_EFFORT, depth 100, for subscribers outside the control loop (analysis,
  recording, displays). A reliable subscriber that falls behind makes the reliable publisher
  wait (measured here: the simulator's publish calls blocked for tens of ms while the
  low-priority recorder caught up, stalling the 1 kHz loop); a best-effort one only loses
  samples itself.
- DIAGNOSTICS: RELIABLE, depth 100, so a burst of fault events is not dropped.
"""
import collections
import contextlib
import gc
import inspect
import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future
from typing import Callable, Iterable, Optional

import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.clock import ROSClock
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from exo_common.diagnostics import Report
from exo_common.params import ConfigError, ParamSpec, spec_table

STREAM_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
MONITOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)
DIAGNOSTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(seconds: float) -> TimeMsg:
    return ns_to_stamp(int(round(seconds * 1e9)))


def stamp_to_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def ns_to_stamp(nanoseconds: int) -> TimeMsg:
    return TimeMsg(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def clock_sec(clock) -> float:
    """clock.now() in seconds. A ROS clock not on simulated time reads the system time, and
    is read here directly: rclpy's Clock.now() costs 5.5 us against 1.6 us for this (measured;
    the 1 kHz loop reads the clock several times a cycle)."""
    if isinstance(clock, ROSClock) and not clock.ros_time_is_active:
        return time.time()
    return clock.now().nanoseconds * 1e-9


def now_sec(node: Node) -> float:
    """The node's ROS time (sim time when use_sim_time is set) in seconds."""
    return clock_sec(node.get_clock())


def all_finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(v) for v in values)


_PARAMETER_TYPES = {
    bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
}
_ARRAY_TYPES = {
    bool: ParameterType.PARAMETER_BOOL_ARRAY, int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY, str: ParameterType.PARAMETER_STRING_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ParameterDescriptor rqt_reconfigure and `ros2 param describe` show for a spec."""
    kind = spec.element_kind
    desc = ParameterDescriptor(
        name=spec.name,
        type=(_ARRAY_TYPES if spec.kind is list else _PARAMETER_TYPES)[kind],
        description=spec.full_description(),
        read_only=spec.read_only,
    )
    if spec.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(map(str, spec.choices))
    if spec.min_value is not None and spec.max_value is not None and spec.kind is not list:
        if kind is float:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(spec.min_value), to_value=float(spec.max_value), step=float(spec.step))]
        elif kind is int:
            desc.integer_range = [IntegerRange(
                from_value=int(spec.min_value), to_value=int(spec.max_value), step=int(spec.step))]
    return desc


# Every callback of an ExoNode runs holding this lock, and a LocalPublisher hands its messages
# over holding it: nodes composed in one process never see two threads at once, although the
# simulator publishes from its physics thread.
PROCESS_LOCK = threading.RLock()
# One entry per guarded callback waiting for PROCESS_LOCK (list append/pop are atomic under the
# GIL); a thread that holds the lock most of the time looks here to let them in.
_WAITING_FOR_LOCK: list = []


def guarded(callback):
    """callback, run holding PROCESS_LOCK."""
    def run(*args, **kwargs):
        _WAITING_FOR_LOCK.append(None)
        try:
            PROCESS_LOCK.acquire()
        finally:
            _WAITING_FOR_LOCK.pop()
        try:
            return callback(*args, **kwargs)
        finally:
            PROCESS_LOCK.release()
    # rclpy inspects a callback's signature (message info, timer info) on every call: give the
    # answer at once instead of unwrapping
    run.__signature__ = inspect.signature(callback)
    run.__name__ = getattr(callback, '__name__', 'callback')
    return run


def let_waiting_callbacks_in(limit_s: float) -> None:
    """For a thread that holds PROCESS_LOCK nearly all the time (the simulator's physics loop
    running flat out in lock-step), called without holding it: wait until the callbacks waiting
    for the lock have taken it, at most limit_s. Python's lock is not fair: released and taken
    again at once, it starves the executor's callbacks (measured: a controller that no longer
    saw the belt speed)."""
    deadline = time.monotonic() + limit_s
    while _WAITING_FOR_LOCK and time.monotonic() < deadline:
        time.sleep(0.00002)  # gives up the GIL, so a waiting callback's thread can take the lock


_DEFERRAL = threading.local()


@contextlib.contextmanager
def dds_copies_deferred(defer: Callable[[Callable[[], None]], None]):
    """For the block, in this thread: LocalPublisher.publish hands defer() the sending of each
    message's DDS copy instead of sending it before returning.

    The simulator's physics thread publishes an encoder sample inside this block, so the chain
    it runs (encoder, controller, supervisor, back to the simulator) does only its in-process
    work before the command is in; the copies for recorders and other processes go out in the
    spare time of the control period (exo_sim.spare_time), where a slow moment of the machine
    postpones them instead of the next sample. The copy is the message object itself, sent
    later: a LocalPublisher's messages must not be changed once published.

    Args:
        defer: takes a callable that sends the publisher's oldest waiting copy; it must call
            each one, in order. A publish outside the block sends the waiting copies first, so
            DDS subscribers get each topic in order (the supervisor's e-stop command never
            overtakes a command it replaced).
    """
    previous = getattr(_DEFERRAL, 'defer', None)
    _DEFERRAL.defer = defer
    try:
        yield
    finally:
        _DEFERRAL.defer = previous


class LocalPublisher:
    """A publisher that also hands every message directly to subscribers in the same process.

    rclpy has no intra-process communication: nodes composed in one process still pay for
    serialising, a DDS round trip and deserialising on every hop. For the 1 kHz chain
    (mujoco_sim -> encoder_node -> gait_controller -> safety_supervisor -> mujoco_sim, one
    process in `exo-gait sim`) the message goes to the local subscribers first, by direct call,
    and then on DDS (recorders, other processes): at once, or later inside dds_copies_deferred;
    not at all on a volatile topic no DDS subscriber matches, as rclcpp's intra-process
    publishing does (a serialisation for nobody costs the 1 kHz loop 8 us). A published message
    is no longer the publisher's to change (build a new one for each publish: its DDS copy may
    still be waiting), and local subscribers must treat it as read-only and not keep it.
    publish() may be called from any thread (the simulator's physics thread): the local
    subscribers are called holding PROCESS_LOCK, as every executor callback of an ExoNode is.
    """

    def __init__(self, publisher, msg_type):
        self._publisher = publisher
        self.msg_type = msg_type
        self.topic_name = publisher.topic_name
        self.qos_profile = publisher.qos_profile
        self.callbacks: list = []
        self._latched = publisher.qos_profile.durability != DurabilityPolicy.VOLATILE
        self._deferred: collections.deque = collections.deque()  # messages whose copy waits

    def publish(self, msg) -> None:
        if self.callbacks:
            with PROCESS_LOCK:
                for callback in self.callbacks:
                    callback(msg)
        publisher = self._publisher
        if not self._latched and publisher.get_subscription_count() == 0:
            return
        defer = getattr(_DEFERRAL, 'defer', None)
        if defer is not None:
            self._deferred.append(msg)
            defer(self._send_oldest)
            return
        while self._deferred:  # DDS subscribers get the topic in the order it was published
            self._send_oldest()
        publisher.publish(msg)

    def _send_oldest(self) -> None:
        try:
            msg = self._deferred.popleft()
        except IndexError:  # a direct publish sent it first
            return
        self._publisher.publish(msg)

    def get_subscription_count(self) -> int:
        return self._publisher.get_subscription_count() + len(self.callbacks)


class LocalSubscription:
    """Stands where a Subscription would: same topic_name and qos_profile, fed in-process."""

    def __init__(self, topic_name: str, qos_profile):
        self.topic_name = topic_name
        self.qos_profile = qos_profile


_LOCAL_PUBLISHERS: dict = {}  # (id(context), resolved topic) -> LocalPublisher
# (id(context), resolved topic) -> [(node, subscription, callback, first, msg_type)]: DDS
# subscriptions made before a local publisher of their topic existed, taken over when it appears
_PENDING_LOCAL: dict = {}


def intra_process_enabled() -> bool:
    """EXO_GAIT_INTRA_PROCESS=0 sends every message through DDS (for comparisons)."""
    return os.environ.get('EXO_GAIT_INTRA_PROCESS', '1') != '0'


class ExoNode(Node):
    """Base of every exo_gait node: checked parameters and a /diagnostics publisher.

    Subclasses pass their ParamSpec list; values are in self.params (name -> value) and kept
    current. Override on_parameters_changed() to apply live changes and
    check_parameters() for checks across several parameters.

    Raises:
        ConfigError: a parameter from the command line or a params file is invalid.
    """

    def __init__(self, node_name: str, specs: Iterable[ParamSpec], **kwargs):
        super().__init__(node_name, **kwargs)
        self._specs = spec_table(specs)
        self.params: dict = {}
        for spec in self._specs.values():
            parameter = self.declare_parameter(spec.name, spec.coerce(spec.default), descriptor(spec))
            value = parameter.value
            problem = spec.reason_to_reject(value)
            if problem:
                raise ConfigError(f'{node_name}: {problem}')
            self.params[spec.name] = spec.coerce(value)
        problem = self.check_parameters(dict(self.params))
        if problem:
            raise ConfigError(f'{node_name}: {problem}')
        self.add_on_set_parameters_callback(guarded(self._on_set_parameters))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)

    def check_parameters(self, candidate: dict) -> Optional[str]:
        """A reason to refuse a combination of values, or None."""
        return None

    def drive_executor(self, executor) -> Optional[Future]:
        """Offered the process's executor by run_nodes: a node with a thread of its own that must
        keep time (the simulator's physics) may serve the executor's callbacks from that thread
        in its idle time. It returns a future that completes when it stops doing so (with the
        exception of a callback that raised); the process then has one Python thread doing the
        work, with no GIL handed back and forth. None (the default): run_nodes spins."""
        return None

    def on_parameters_changed(self, changed: dict) -> None:
        """Apply accepted live changes (name -> new value)."""

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changed = {}
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is None:
                if parameter.name == 'use_sim_time':
                    continue
                return SetParametersResult(successful=False, reason=f'unknown parameter {parameter.name}')
            problem = spec.reason_to_reject(parameter.value)
            if problem:
                self.get_logger().warning(f'refused parameter change: {problem}')
                return SetParametersResult(successful=False, reason=problem)
            changed[parameter.name] = spec.coerce(parameter.value)
        problem = self.check_parameters({**self.params, **changed})
        if problem:
            self.get_logger().warning(f'refused parameter change: {problem}')
            return SetParametersResult(successful=False, reason=problem)
        self.params.update(changed)
        if changed:
            self.on_parameters_changed(changed)
        return SetParametersResult(successful=True)

    def publish_diagnostics(self, reports: Iterable[Report]) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        for report in reports:
            msg.status.append(DiagnosticStatus(
                level=bytes([int(report.level)]), name=report.name, message=report.message,
                hardware_id=report.hardware_id,
                values=[KeyValue(key=str(k), value=str(v)) for k, v in report.values.items()]))
        self._diagnostics_pub.publish(msg)

    def create_subscription(self, msg_type, topic, callback, *args, **kwargs):
        return super().create_subscription(msg_type, topic, guarded(callback), *args, **kwargs)

    def create_timer(self, timer_period_sec, callback, *args, **kwargs):
        return super().create_timer(timer_period_sec, guarded(callback), *args, **kwargs)

    def create_service(self, srv_type, srv_name, callback, *args, **kwargs):
        return super().create_service(srv_type, srv_name, guarded(callback), *args, **kwargs)

    def destroy_node(self):
        """Also forget this node's local publishers and pending local subscriptions (a node made
        later in the same context must not bind to a dead one)."""
        for key, local in list(_LOCAL_PUBLISHERS.items()):
            if local._publisher in self.publishers:
                del _LOCAL_PUBLISHERS[key]
        for key, waiting in list(_PENDING_LOCAL.items()):
            waiting[:] = [entry for entry in waiting if entry[0] is not self]
            if not waiting:
                del _PENDING_LOCAL[key]
        return super().destroy_node()

    def shutdown_hook(self) -> None:
        """Called once before the node is destroyed (e.g. publish a safe command)."""

    def create_local_publisher(self, msg_type, topic: str, qos, **kwargs) -> LocalPublisher:
        """A publisher whose subscribers in this process get messages by direct call (kwargs go
        to create_publisher)."""
        local = LocalPublisher(self.create_publisher(msg_type, topic, qos, **kwargs), msg_type)
        if intra_process_enabled():
            key = (id(self.context), local.topic_name)
            _LOCAL_PUBLISHERS[key] = local
            waiting = _PENDING_LOCAL.pop(key, [])
            for node, subscription, callback, first, wanted in waiting:
                if wanted is msg_type:
                    # False: the subscribing node is gone (destroyed with its subscriptions)
                    if node.destroy_subscription(subscription):
                        _add_local_callback(local, callback, first)
                else:
                    _PENDING_LOCAL.setdefault(key, []).append((node, subscription, callback, first, wanted))
        return local

    def create_local_subscription(self, msg_type, topic: str, callback, qos, first: bool = False,
                                  **kwargs):
        """Subscribe in-process when a local publisher of the topic exists in this process,
        else through DDS (nodes in their own processes, as ros2 launch starts them). A DDS
        subscription made before the local publisher is created is replaced by the in-process
        hand-off when it is (so the returned Subscription may be destroyed then: do not keep it).

        Args:
            first: be called before the other local subscribers (the safety supervisor sees a
                joint-state sample before the controller's request computed from it arrives).
        """
        key = (id(self.context), self.resolve_topic_name(topic))
        local = _LOCAL_PUBLISHERS.get(key)
        if local is None or local.msg_type is not msg_type:
            subscription = self.create_subscription(msg_type, topic, callback, qos, **kwargs)
            if local is None and intra_process_enabled():
                _PENDING_LOCAL.setdefault(key, []).append((self, subscription, callback, first, msg_type))
            return subscription
        _add_local_callback(local, callback, first)
        return LocalSubscription(key[1], qos)


def _add_local_callback(local: LocalPublisher, callback, first: bool) -> None:
    if first:
        local.callbacks.insert(0, callback)
    else:
        local.callbacks.append(callback)


def make_executor(context=None):
    """rclpy's events executor where available (a fifth of the CPU at 1 kHz), else single-threaded.

    Args:
        context: the rclpy context to serve (default: the global one).

    EXO_GAIT_EXECUTOR=single forces the single-threaded executor.
    """
    if os.environ.get('EXO_GAIT_EXECUTOR', 'events') != 'single':
        try:
            from rclpy.experimental import EventsExecutor
            return EventsExecutor(context=context)
        except ImportError:
            pass
    return rclpy.executors.SingleThreadedExecutor(context=context)


def spin(executor, stop: Optional[threading.Event] = None, timeout_sec: float = 0.1) -> None:
    """Spin until shutdown or stop is set.

    Always with a finite timeout: EventsExecutor.spin() never returns in this rclpy.
    """
    while rclpy.ok() and not (stop is not None and stop.is_set()):
        executor.spin_once(timeout_sec=timeout_sec)


def settle_garbage_collector() -> None:
    """Collect once, then leave everything that exists (modules, nodes, tables) out of later
    collections: a full collection of the loaded control-loop process stops every thread in it
    for about 50 ms (measured), whenever the collector decides to run one."""
    gc.collect()
    gc.freeze()


def run_nodes(factories: Iterable[Callable[[], ExoNode]], args=None) -> int:
    """Create nodes in one process and spin them until SIGINT/SIGTERM.

    Returns the process exit code: 0 clean, 2 configuration error.
    """
    rclpy.init(args=args)
    stop = threading.Event()
    nodes = []
    previous = {}

    def request_stop(signum, frame):
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, request_stop)
    try:
        try:
            nodes = [factory() for factory in factories]
        except ConfigError as exc:
            print(f'configuration error: {exc}', file=sys.stderr, flush=True)
            return 2
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        settle_garbage_collector()
        driving = next((f for f in (node.drive_executor(executor) for node in nodes) if f is not None), None)
        while driving is not None and not driving.done() and not stop.is_set() and rclpy.ok():
            stop.wait(0.1)
        if driving is not None and driving.done():
            driving.result()  # a callback's exception surfaces here, as if raised while spinning here
        spin(executor, stop)  # no driver, or it stopped: callbacks (the watchdogs') still run
        return 0
    finally:
        for node in reversed(nodes):
            try:
                node.shutdown_hook()
            except Exception as exc:  # a failing hook must not keep others from running
                print(f'{node.get_name()}: shutdown hook failed: {exc}', file=sys.stderr)
        time.sleep(0.05)  # let the last (safe) messages leave
        for node in nodes:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def node_main(factory: Callable[[], ExoNode]) -> None:
    """Console-script entry: one node in its own process."""
    sys.exit(run_nodes([factory], args=sys.argv))
