"""Safety events (faults, safe stops, operator actions) and their append-only, fsync'd log.

Plain Python, no rclpy. One JSON object per line, written and fsync'd by a writer thread as
soon as it is appended, so a line survives a later crash or power loss of this process without
the control callbacks ever waiting for the disk. Sequence numbers are contiguous over the whole file: a new run continues after the
last complete line it finds (a line torn by a crash is skipped, never repaired in place).
"""
from __future__ import annotations

import array
import dataclasses
import enum
import json
import math
import os
import pathlib
import queue
import sys
import threading
from typing import Callable, Optional

LOG_FILE_NAME = 'safety_faults.jsonl'
# One control cycle as kept in a fault's history (a tuple in this order, see Supervisor).
HISTORY_FIELDS = ('steady_time', 'stamp', 'state', 'request', 'reference', 'position',
                  'velocity', 'tilt', 'command')


class EventKind(str, enum.Enum):
    FAULT = 'fault'          # latched: torque off until reset + enable
    SAFE_STOP = 'safe_stop'  # torque off, back to DISABLED, no reset needed
    OPERATOR = 'operator'    # enable / disable / e-stop / reset request


class FaultCode(str, enum.Enum):
    ESTOP = 'ESTOP'
    REQUEST_NOT_FINITE = 'REQUEST_NOT_FINITE'
    SENSOR_NOT_FINITE = 'SENSOR_NOT_FINITE'
    POSITION_LIMIT = 'POSITION_LIMIT'
    VELOCITY_LIMIT = 'VELOCITY_LIMIT'
    TRUNK_TILT = 'TRUNK_TILT'
    FALL = 'FALL'
    JOINT_STATES_STALE = 'JOINT_STATES_STALE'
    PELVIS_IMU_STALE = 'PELVIS_IMU_STALE'
    COMMAND_NOT_FINITE = 'COMMAND_NOT_FINITE'
    CONTROLLER_STALE = 'CONTROLLER_STALE'  # a safe stop, not a latched fault


@dataclasses.dataclass
class SafetyEvent:
    """One entry of the event log and of /diagnostics.

    Args:
        kind: fault, safe stop or operator action.
        code: FaultCode value, or the operator action ('enable', 'disable', 'estop', 'reset').
        message: one human sentence.
        joint: joint (or sensor/stream) concerned, '' if none.
        value: offending value (NaN when not applicable).
        limit: the limit it broke (NaN when not applicable).
        ros_time: node clock (s, sim time with use_sim_time).
        steady_time: time.monotonic() of detection (s).
        wall_time: time.time() of detection (s), for people reading the log later.
        state_before, state_after: supervisor states around the event.
        accepted: for operator actions, whether the request was granted.
        sequence: set by EventLog.append (contiguous over the log file).
        history: last control cycles before the event (tuples in HISTORY_FIELDS order;
            faults only); turned into dicts only when written.
    """
    kind: EventKind
    code: str
    message: str
    joint: str = ''
    value: float = math.nan
    limit: float = math.nan
    ros_time: float = 0.0
    steady_time: float = 0.0
    wall_time: float = 0.0
    state_before: str = ''
    state_after: str = ''
    accepted: bool = True
    sequence: int = 0
    history: list = dataclasses.field(default_factory=list)

    def fields(self) -> dict:
        """Flat key -> value (no history) for a DiagnosticStatus."""
        return {
            'kind': self.kind.value, 'code': self.code, 'joint': self.joint,
            'value': self.value, 'limit': self.limit, 'ros_time': f'{self.ros_time:.6f}',
            'steady_time': f'{self.steady_time:.6f}', 'sequence': self.sequence,
            'state_before': self.state_before, 'state_after': self.state_after,
        }

    def to_json(self) -> str:
        """One line of strict JSON (NaN and Inf spelled as strings)."""
        record = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        record['kind'] = self.kind.value
        record['history'] = [dict(zip(HISTORY_FIELDS, cycle)) for cycle in self.history]
        try:  # the C encoder alone in the usual case: the writer thread shares the GIL
            return json.dumps(record, separators=(',', ':'), allow_nan=False, default=list)
        except ValueError:
            return json.dumps(_json_safe(record), separators=(',', ':'), allow_nan=False)


def _json_safe(value):
    """NaN and Inf as strings (strict JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, array.array)):
        return [_json_safe(v) for v in value]
    return value


def default_log_path() -> pathlib.Path:
    """$XDG_STATE_HOME/exo_gait/safety_faults.jsonl, else ~/.local/state/exo_gait/..."""
    state_home = os.environ.get('XDG_STATE_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'state')
    return pathlib.Path(state_home) / 'exo_gait' / LOG_FILE_NAME


class EventLog:
    """Append-only JSON-lines file, each line written and fsync'd by a writer thread.

    `append` numbers the event and returns at once, so a slow disk (fsync stalls of hundreds
    of milliseconds happen) never blocks the control callbacks; `flush` waits until every
    appended event is on disk (the services use it before they answer).

    Args:
        path: the log file ('' = default_log_path()); parent folders are created.
        on_written: called by the writer thread with each event once it is written (or its write
            failed): the node's ROS log line, which costs rclpy 1.7 ms (it resolves its
            caller's file on disk) and so must not run in the control loop's thread.

    Raises:
        OSError: the file cannot be created or opened for appending.
    """

    def __init__(self, path: str | os.PathLike = '',
                 on_written: Optional[Callable[[SafetyEvent], None]] = None):
        self.path = pathlib.Path(path) if str(path) else default_log_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last_sequence = last_sequence_in(self.path)
        self.error: Optional[OSError] = None  # the last write failure, if any
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self._ends_torn():
            os.write(self._fd, b'\n')  # a crash tore the last line: start a fresh one
        _fsync_directory(self.path.parent)
        self._queue: queue.Queue = queue.Queue()
        self._written = self.last_sequence
        self._on_written = on_written
        self._done = threading.Condition()
        self._thread = threading.Thread(target=self._write_loop, name='fault_log', daemon=True)
        self._thread.start()

    def _ends_torn(self) -> bool:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return False
        with open(self.path, 'rb') as handle:
            handle.seek(size - 1)
            return handle.read(1) != b'\n'

    def append(self, event: SafetyEvent) -> int:
        """Number the event and queue it for writing; returns its sequence number."""
        self.last_sequence += 1
        event.sequence = self.last_sequence
        self._queue.put(event)
        return event.sequence

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every appended event is on disk; False on timeout."""
        target = self.last_sequence
        with self._done:
            return self._done.wait_for(lambda: self._written >= target, timeout)

    def _write_loop(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                os.write(self._fd, (event.to_json() + '\n').encode())
                os.fsync(self._fd)
            except OSError as exc:
                self.error = exc
            if self._on_written is not None:
                try:
                    self._on_written(event)
                except Exception as exc:  # the file has it; say so where someone will see it
                    print(f'fault log: reporting event {event.sequence} failed: {exc!r}', file=sys.stderr)
            with self._done:
                self._written = event.sequence
                self._done.notify_all()

    def close(self) -> None:
        """Write what is queued, then close the file."""
        if self._fd >= 0:
            self._queue.put(None)
            self._thread.join(timeout=10.0)
            os.close(self._fd)
            self._fd = -1


def _fsync_directory(folder: pathlib.Path) -> None:
    """Make a newly created file's directory entry durable too (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_events(path: str | os.PathLike) -> list[dict]:
    """All complete lines of a log as dicts (torn or corrupt lines skipped)."""
    events = []
    try:
        with open(path, 'rb') as handle:
            for line in handle:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return events


def last_sequence_in(path: pathlib.Path, tail_bytes: int = 1 << 20) -> int:
    """Sequence number of the last complete line (0 for a new or empty file).

    Reads only the file's tail; with each fault carrying its history a line is a few tens of
    kB, so the last megabyte always holds several complete lines.
    """
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().split(b'\n')
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)['sequence'])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


