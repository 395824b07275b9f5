"""Just enough CDR (XCDR1, little endian) for the messages the reports read, the benchmarks
write and the simulator's EMG amplifier publishes.

Reports read millions of messages; decoding only the needed fields with struct is several
times faster than building full message objects, and needs no rclpy; likewise rclpy takes
serialized bytes for publishing, which for a 20-point JointTrajectory costs a fraction of
converting the message object. Writers produce the
same bytes as rmw_fastrtps on the wire (zero padding), which rosbags reads back.
Alignment is relative to the payload after the 4-byte encapsulation header.
"""
import struct

ENCAPSULATION = b'\x00\x01\x00\x00'  # CDR little endian


class CdrError(ValueError):
    """A message that is not the expected type (too short, bad lengths, big endian)."""


class _Reader:
    __slots__ = ('data', 'pos')

    def __init__(self, data: bytes):
        if len(data) < 4 or data[1] != 1:
            raise CdrError('not little-endian CDR')
        self.data = data
        self.pos = 4

    def align(self, size: int) -> None:
        self.pos += (-(self.pos - 4)) % size

    def unpack(self, fmt: struct.Struct, size: int):
        self.align(size)
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def uint32(self) -> int:
        return self.unpack(_U32, 4)[0]

    def string(self) -> str:
        length = self.uint32()
        end = self.pos + length
        if length == 0 or end > len(self.data):
            raise CdrError('bad string length')
        text = self.data[self.pos:end - 1].decode()
        self.pos = end
        return text

    def doubles(self) -> tuple:
        count = self.uint32()
        if count == 0:
            return ()
        self.align(8)
        values = struct.unpack_from(f'<{count}d', self.data, self.pos)
        self.pos += 8 * count
        return values

    def stamp(self) -> float:
        sec, nanosec = self.unpack(_STAMP, 4)
        return sec + nanosec * 1e-9


_U32 = struct.Struct('<I')
_STAMP = struct.Struct('<iI')
_VEC3 = struct.Struct('<3d')
_IMU_HEAD = struct.Struct('<iII')


def _guard(decode):
    def wrapper(data):
        try:
            return decode(data)
        except (struct.error, UnicodeDecodeError, IndexError) as exc:
            raise CdrError(str(exc)) from exc
    wrapper.__doc__ = decode.__doc__
    return wrapper


_names_cache = [b'', 0, ()]  # frame_id + names bytes of the last JointState, end offset, names


@_guard
def joint_state(data: bytes) -> tuple:
    """sensor_msgs/JointState -> (stamp s, names, position, velocity, effort).

    A stream repeats the same frame_id and names in every message: when they match the last
    message's bytes, they are not parsed again.
    """
    reader = _Reader(data)
    stamp = reader.stamp()
    cached, end, names = _names_cache
    if end and data[12:end] == cached:
        reader.pos = end
    else:
        reader.string()
        names = tuple(reader.string() for _ in range(reader.uint32()))
        _names_cache[:] = [data[12:reader.pos], reader.pos, names]
    return stamp, names, reader.doubles(), reader.doubles(), reader.doubles()


@_guard
def imu_angular_velocity(data: bytes) -> tuple:
    """sensor_msgs/Imu -> (stamp s, (wx, wy, wz) rad/s)."""
    if data[1] != 1:
        raise CdrError('not little-endian CDR')
    sec, nanosec, frame_length = _IMU_HEAD.unpack_from(data, 4)
    position = 16 + frame_length
    position += (-(position - 4)) % 8 + 8 * (4 + 9)  # orientation, orientation_covariance
    return sec + nanosec * 1e-9, _VEC3.unpack_from(data, position)


@_guard
def float64(data: bytes) -> float:
    """std_msgs/Float64 -> value."""
    return _Reader(data).unpack(struct.Struct('<d'), 8)[0]


@_guard
def float64_array(data: bytes) -> tuple:
    """std_msgs/Float64MultiArray -> data values."""
    reader = _Reader(data)
    for _ in range(reader.uint32()):  # layout.dim
        reader.string()
        reader.uint32()
        reader.uint32()
    reader.uint32()  # data_offset
    return reader.doubles()


@_guard
def diagnostic_array(data: bytes) -> tuple:
    """diagnostic_msgs/DiagnosticArray -> (stamp s, [(level, name, message, {key: value})])."""
    reader = _Reader(data)
    stamp = reader.stamp()
    reader.string()
    statuses = []
    for _ in range(reader.uint32()):
        level = reader.data[reader.pos]
        reader.pos += 1
        name, message, _ = reader.string(), reader.string(), reader.string()
        values = {reader.string(): reader.string() for _ in range(reader.uint32())}
        statuses.append((level, name, message, values))
    return stamp, statuses


class Writer:
    """Builds CDR payloads with zero padding."""

    def __init__(self):
        self.buffer = bytearray(ENCAPSULATION)

    def align(self, size: int) -> None:
        self.buffer += bytes((-(len(self.buffer) - 4)) % size)

    def pack(self, fmt: str, size: int, *values) -> 'Writer':
        self.align(size)
        self.buffer += struct.pack('<' + fmt, *values)
        return self

    def string(self, text: str) -> 'Writer':
        raw = text.encode() + b'\0'
        self.pack('I', 4, len(raw))
        self.buffer += raw
        return self

    def header(self, stamp: float, frame_id: str = '') -> 'Writer':
        nanoseconds = int(round(stamp * 1e9))
        return self.pack('iI', 4, nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000).string(frame_id)

    def doubles(self, values) -> 'Writer':
        self.pack('I', 4, len(values))
        if values:
            self.pack(f'{len(values)}d', 8, *values)
        return self

    def bytes(self) -> bytes:
        return bytes(self.buffer)


def encode_joint_state(stamp: float, names, position=(), velocity=(), effort=()) -> bytes:
    writer = Writer().header(stamp).pack('I', 4, len(names))
    for name in names:
        writer.string(name)
    return writer.doubles(position).doubles(velocity).doubles(effort).bytes()


def encode_imu(stamp: float, frame_id: str, angular_velocity, linear_acceleration=(0.0, 0.0, 9.81)) -> bytes:
    writer = Writer().header(stamp, frame_id)
    writer.pack('4d', 8, 0.0, 0.0, 0.0, 1.0).pack('9d', 8, -1.0, *[0.0] * 8)
    writer.pack('3d', 8, *angular_velocity).pack('9d', 8, *[0.0] * 9)
    writer.pack('3d', 8, *linear_acceleration).pack('9d', 8, *[0.0] * 9)
    return writer.bytes()


def encode_float64(value: float) -> bytes:
    return Writer().pack('d', 8, value).bytes()


def encode_float64_array(values) -> bytes:
    return Writer().pack('I', 4, 0).pack('I', 4, 0).doubles(values).bytes()


def encode_diagnostic_array(stamp: float, statuses) -> bytes:
    """statuses: [(level, name, message, {key: value})]."""
    writer = Writer().header(stamp).pack('I', 4, len(statuses))
    for level, name, message, values in statuses:
        writer.pack('B', 1, level).string(name).string(message).string('exo_gait').pack('I', 4, len(values))
        for key, value in values.items():
            writer.string(key).string(str(value))
    return writer.bytes()


_STAMP = struct.Struct('<iI')
_EMPTY_SEQUENCES = bytes(12)


class JointTrajectoryEncoder:
    """trajectory_msgs/JointTrajectory with fixed joint names and points of positions only (the
    EMG amplifier's batches: one point per sample), serialized fast.

    Args:
        names: joint_names.
        frame_id: header.frame_id.
    """

    def __init__(self, names, frame_id: str = ''):
        writer = Writer().pack('iI', 4, 0, 0).string(frame_id).pack('I', 4, len(names))
        for name in names:
            writer.string(name)
        writer.align(4)
        self._head = bytes(writer.buffer)
        self._doubles = struct.Struct(f'<{len(names)}d')

    def encode(self, sec: int, nanosec: int, rows, times) -> bytes:
        """rows: positions per point (each of len(names)); times: (sec, nanosec) per point."""
        out = bytearray(self._head)
        _STAMP.pack_into(out, 4, sec, nanosec)
        out += _U32.pack(len(rows))
        doubles = self._doubles
        for row, (t_sec, t_nanosec) in zip(rows, times):
            out += _U32.pack(len(row))            # always 4-aligned here
            if row:
                if (len(out) - 4) % 8:
                    out += bytes(4)
                out += doubles.pack(*row)
            out += _EMPTY_SEQUENCES               # velocities, accelerations, effort
            out += _STAMP.pack(t_sec, t_nanosec)  # time_from_start
        return bytes(out)
