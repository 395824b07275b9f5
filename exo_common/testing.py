"""Helpers for tests and benchmarks that talk to nodes over real ROS topics."""
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

import rclpy
from rclpy.context import Context
from rclpy.node import Node

from exo_common.ros import STREAM_QOS, make_executor


def isolate_ros_graph(domain_id: Optional[int] = None) -> int:
    """Keep this process and its children on their own DDS domain, on loopback only."""
    if domain_id is None:
        domain_id = int(os.environ.get('ROS_DOMAIN_ID') or random.randint(1, 100))
    os.environ['ROS_DOMAIN_ID'] = str(domain_id)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    return domain_id


class RosHarness:
    """A private rclpy context with a probe node spun in a background thread.

    Nodes under test may be added to the same executor (same process, real topics).
    """

    def __init__(self, name: str = 'test_probe'):
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = make_executor(self.context)
        self.node = Node(name, context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients = {}
        self._subscriptions = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok() and not self._stop.is_set():
            with self._lock:
                self.executor.spin_once(timeout_sec=0.01)

    def add_node(self, node: Node) -> Node:
        with self._lock:
            self.executor.add_node(node)
        return node

    def collect(self, msg_type, topic: str, qos=STREAM_QOS, raw: bool = False) -> list:
        """Subscribe and return the (growing) list of received messages (serialized bytes with
        raw, which costs a fraction of deserializing: for probing kHz streams)."""
        received = []
        with self._lock:
            self._subscriptions[id(received)] = self.node.create_subscription(
                msg_type, topic, received.append, qos, raw=raw)
        return received

    def stop_collecting(self, received: list) -> None:
        """End the subscription behind a list from collect() (the list keeps its messages)."""
        with self._lock:
            self.node.destroy_subscription(self._subscriptions.pop(id(received)))

    def publisher(self, msg_type, topic: str, qos=STREAM_QOS):
        with self._lock:
            return self.node.create_publisher(msg_type, topic, qos)

    def call(self, srv_type, name: str, request, timeout: float = 5.0, attempts: int = 3):
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._clients[name] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {name} not available')
        # A service can be "available" before the server has matched this client's reply
        # reader (discovery is slow on a loaded machine): the first reply may then be lost, so
        # the request is sent again (every request used here is idempotent).
        for attempt in range(attempts):
            future = client.call_async(request)
            try:
                wait_until(future.done, timeout, f'no answer from {name}')
                return future.result()
            except TimeoutError:
                client.remove_pending_request(future)
                if attempt == attempts - 1:
                    raise

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        for node in list(self.executor.get_nodes()):
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown(timeout_sec=1.0)
        rclpy.shutdown(context=self.context)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str = 'condition') -> None:
    """Poll predicate every 10 ms; raise TimeoutError naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise TimeoutError(f'timed out after {timeout} s waiting for {what}')


class NodeProcess:
    """A node started as its own process (`python -m module --ros-args ...`).

    Its output goes to a temporary file (a pipe nobody reads would block a chatty node).
    """

    def __init__(self, module: str, ros_args: tuple = (), env: Optional[dict] = None):
        command = [sys.executable, '-m', module]
        if ros_args:
            command += ['--ros-args', *ros_args]
        self._output = tempfile.TemporaryFile(mode='w+')
        self.process = subprocess.Popen(
            command, env={**os.environ, **(env or {})},
            stdout=self._output, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        self._output.seek(0)
        return self._output.read()

    def stop(self, timeout: float = 5.0) -> tuple[int, str]:
        """SIGTERM, wait, and return (exit code, output)."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.output()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
