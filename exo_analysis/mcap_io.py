"""MCAP files with ROS 2 (CDR) messages: schemas, a crash-tolerant writer and a fast reader.

Plain Python (no rclpy): messages go in and come out as serialized CDR bytes.

Writing: ROS 2 schemas ('ros2msg' encoding) are assembled from the .msg files installed under
<prefix>/share/<package>/msg/ (the venv's share/ for the PyPI wheels, every entry of
AMENT_PREFIX_PATH for a ROS install), each dependency appended after a line of 80 '=' and
'MSG: <package>/<Type>' - the layout rosbag2, rosbags, mcap_ros2 and Foxglove read. Chunks
(zstd) are written whenever they fill and at every flush(), so a crash loses at most the
chunk in progress; close() writes the summary and footer.

Reading (SessionReader): a streaming, channel-selective scan. Records are read one by one from
the start (no summary needed, so truncated files from a crash are read up to the last whole
record). For each chunk, the message index records that follow it give the offsets of the
wanted channels' messages, so only those are sliced out of the decompressed chunk (a 1 kHz
topic nobody asked for costs nothing but decompression); the index also gives log times, so
decimation (`min_period_ns`) happens before any message is touched. Memory: one chunk.
"""
import os
import pathlib
import re
import struct
import sys
import zlib
from typing import BinaryIO, Iterator, Optional

import numpy as np

MCAP_MAGIC = b'\x89MCAP0\r\n'
PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
              'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'}
SEPARATOR = '=' * 80
# opcodes (MCAP specification)
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_MESSAGE_INDEX = 1, 2, 3, 4, 5, 6, 7
OP_METADATA, OP_DATA_END = 0x0C, 0x0F


class RecordingError(Exception):
    """A file that is not a readable MCAP recording (message names the file)."""


# ------------------------------------------------------------------------------------------------
# schemas
# ------------------------------------------------------------------------------------------------

def _share_dirs() -> list[pathlib.Path]:
    dirs = [pathlib.Path(sys.prefix) / 'share']
    for prefix in filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)):
        dirs.append(pathlib.Path(prefix) / 'share')
    return dirs


def split_type(type_name: str) -> tuple[str, str]:
    """'sensor_msgs/msg/Imu' or 'sensor_msgs/Imu' -> ('sensor_msgs', 'Imu')."""
    parts = type_name.split('/')
    if len(parts) == 3 and parts[1] == 'msg':
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f'not a ROS 2 message type: {type_name!r} (expected package/msg/Type)')


def message_definition(type_name: str) -> str:
    """The .msg text of one type.

    Raises:
        FileNotFoundError: no share/<package>/msg/<Type>.msg in any prefix.
    """
    package, name = split_type(type_name)
    for share in _share_dirs():
        path = share / package / 'msg' / f'{name}.msg'
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError(f'no message definition {package}/msg/{name}.msg under '
                            f'{", ".join(map(str, _share_dirs()))}')


def _field_types(text: str, package: str) -> list[str]:
    types = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        field_type = line.split()[0]
        if '=' in line.split(None, 1)[1] and line.split()[1].split('=')[0].isupper():
            continue  # constant
        base = re.sub(r'\[.*\]$', '', field_type)
        base = re.sub(r'<=\d+$', '', base)
        if base in PRIMITIVES:
            continue
        if base == 'Header':
            base = 'std_msgs/Header'
        elif '/' not in base:
            base = f'{package}/{base}'
        types.append(base)
    return types


def ros2_schema(type_name: str) -> str:
    """The concatenated ros2msg schema of a type with all nested types."""
    package, name = split_type(type_name)
    main = message_definition(type_name)
    parts, seen = [main], set()
    pending = _field_types(main, package)
    while pending:
        dependency = pending.pop(0)
        if dependency in seen:
            continue
        seen.add(dependency)
        dep_package, _ = split_type(dependency)
        text = message_definition(dependency)
        parts.append(f'{SEPARATOR}\nMSG: {dependency}\n{text}')
        pending.extend(_field_types(text, dep_package))
    return '\n'.join(parts)


def starts_with_header(type_name: str) -> bool:
    """True when the first field is a std_msgs/Header (its stamp is the first CDR field)."""
    for line in message_definition(type_name).splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            return line.split()[0] in ('std_msgs/Header', 'Header')
    return False


def header_stamp_ns(data: bytes) -> Optional[int]:
    """header.stamp of a CDR message whose first field is a Header, in ns (None if unreadable)."""
    if len(data) < 12:
        return None
    little = data[1] == 1
    sec, nanosec = struct.unpack_from('<iI' if little else '>iI', data, 4)
    return sec * 1_000_000_000 + nanosec


# ------------------------------------------------------------------------------------------------
# writer
# ------------------------------------------------------------------------------------------------

class McapRecorder:
    """Writes ROS 2 messages (CDR bytes) into an MCAP file.

    Args:
        path: output file (parent folders are created).
        metadata: name -> {key: value} MCAP metadata records written at the start.
        chunk_size: bytes per chunk before compression.
        compression: 'zstd', 'lz4' or 'none'.

    Raises:
        OSError: the file cannot be created.
    """

    def __init__(self, path, metadata: Optional[dict] = None, chunk_size: int = 1 << 20,
                 compression: str = 'zstd'):
        from mcap.writer import CompressionType, Writer
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, 'wb')
        kind = {'zstd': CompressionType.ZSTD, 'lz4': CompressionType.LZ4, 'none': CompressionType.NONE}[compression]
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=kind)
        self._writer.start(profile='ros2', library='exo_gait')
        self._schemas: dict[str, int] = {}
        self.channels: dict[str, tuple[int, bool]] = {}  # topic -> (channel id, has header)
        self.counts: dict[str, int] = {}
        self._sequence = 0
        self.closed = False
        for name, values in (metadata or {}).items():
            self.add_metadata(name, values)
        self.flush()

    def add_metadata(self, name: str, values: dict) -> None:
        self._writer.add_metadata(name, {str(k): str(v) for k, v in values.items()})

    def add_channel(self, topic: str, type_name: str, qos_metadata: str = '') -> int:
        """Register a topic with its type ('pkg/msg/Type'); returns the channel id."""
        if topic in self.channels:
            return self.channels[topic][0]
        package, name = split_type(type_name)
        full_name = f'{package}/msg/{name}'
        if full_name not in self._schemas:
            self._schemas[full_name] = self._writer.register_schema(
                full_name, 'ros2msg', ros2_schema(full_name).encode())
        metadata = {'offered_qos_profiles': qos_metadata} if qos_metadata else {}
        channel = self._writer.register_channel(topic, 'cdr', self._schemas[full_name], metadata)
        self.channels[topic] = (channel, starts_with_header(full_name))
        self.counts[topic] = 0
        return channel

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: Optional[int] = None) -> None:
        """One serialized message; publish time = its header stamp when it has one."""
        channel, has_header = self.channels[topic]
        if publish_time_ns is None:
            publish_time_ns = (header_stamp_ns(data) if has_header else None) or log_time_ns
        self._sequence += 1
        self._writer.add_message(channel, log_time_ns, data, publish_time_ns, self._sequence)
        self.counts[topic] += 1

    def flush(self, sync: bool = False) -> None:
        """Write the chunk in progress to the file (and fsync when sync)."""
        self._writer.flush()
        if sync:
            os.fsync(self._file.fileno())

    def close(self, end_metadata: Optional[dict] = None) -> None:
        """Summary, footer, close; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if end_metadata:
            self.add_metadata('exo_gait.session_end', end_metadata)
        self._writer.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


# ------------------------------------------------------------------------------------------------
# reader
# ------------------------------------------------------------------------------------------------

_RECORD = struct.Struct('<BQ')
_PUBLISH_TIME_OFFSET = 23  # opcode, record length, channel id, sequence, log time


class SessionReader:
    """Streams the messages of selected topics from an MCAP file, in file order.

    Args:
        path: the .mcap file.

    Raises:
        RecordingError: missing file, or not an MCAP file (names the file).
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        try:
            self._file: BinaryIO = open(self.path, 'rb')
        except OSError as exc:
            raise RecordingError(f'{self.path}: cannot open: {exc.strerror}') from exc
        if self._file.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            self._file.close()
            raise RecordingError(f'{self.path}: not an MCAP file (wrong magic bytes)')
        self.schemas: dict[int, tuple[str, str]] = {}   # id -> (name, encoding)
        self.channels: dict[int, tuple[str, int, str]] = {}  # id -> (topic, schema id, encoding)
        self.metadata: dict[str, dict] = {}
        self.truncated = False
        self.complete = False

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def messages(self, topics: dict) -> Iterator[tuple[str, int, int, bytes]]:
        """Yield (topic, log_time_ns, publish_time_ns, data) of the wanted topics.

        Args:
            topics: topic -> minimum period between yielded messages in ns (0 = all), on their
                publish times (the device stamps, for our recordings): a recorder that stalled and
                then received a burst still yields the stream's samples spread as they were taken.

        Truncated files: iteration ends at the last whole record and self.truncated is set.
        """
        self._file.seek(len(MCAP_MAGIC))
        self.truncated = self.complete = False
        pending = None  # (offset, length, {channel id: message index record})
        last_yield = {topic: -1 << 62 for topic in topics}
        read = self._file.read
        while True:
            head = read(9)
            if len(head) < 9:
                self.truncated = not self.complete
                break
            opcode, length = _RECORD.unpack(head)
            if opcode == OP_MESSAGE_INDEX and pending is not None:
                body = read(length)
                if len(body) < length:
                    self.truncated = True
                    break
                pending[2][struct.unpack_from('<H', body, 0)[0]] = body
                continue
            if pending is not None:
                yield from self._chunk_messages(pending, topics, last_yield)
                pending = None
            if opcode == OP_FOOTER:
                self.complete = True
                break
            if opcode == OP_DATA_END:
                self.complete = True
            offset = self._file.tell()
            if opcode == OP_CHUNK:
                if self._file.seek(0, os.SEEK_END) < offset + length:
                    self.truncated = True
                    break
                self._file.seek(offset + length)
                pending = (offset, length, {})
                continue
            body = read(length)
            if len(body) < length:
                self.truncated = True
                break
            if opcode == OP_METADATA:
                self._metadata(body)
            else:
                yield from self._record(opcode, body, topics, last_yield)
        if pending is not None:
            if self.truncated:  # its message indexes may be cut short: scan the chunk instead
                pending = (pending[0], pending[1], {})
            yield from self._chunk_messages(pending, topics, last_yield)

    def read_metadata(self) -> dict:
        """Scan the whole file for metadata records (cheap: chunks are skipped unread)."""
        for _ in self.messages({}):
            pass
        return self.metadata

    # -- records
    def _definition(self, opcode: int, body: bytes) -> None:
        try:
            if opcode == OP_SCHEMA:
                schema_id, = struct.unpack_from('<H', body, 0)
                name, offset = _string(body, 2)
                encoding, offset = _string(body, offset)
                self.schemas[schema_id] = (name, encoding)
            else:
                channel_id, schema_id = struct.unpack_from('<HH', body, 0)
                topic, offset = _string(body, 4)
                encoding, offset = _string(body, offset)
                self.channels[channel_id] = (topic, schema_id, encoding)
        except (struct.error, UnicodeDecodeError) as exc:
            raise RecordingError(f'{self.path}: corrupt schema/channel record: {exc}') from exc

    def _metadata(self, body: bytes) -> None:
        try:
            name, offset = _string(body, 0)
            size, = struct.unpack_from('<I', body, offset)
            offset += 4
            end = offset + size
            values = {}
            while offset < end:
                key, offset = _string(body, offset)
                value, offset = _string(body, offset)
                values[key] = value
            self.metadata[name] = values
        except (struct.error, UnicodeDecodeError) as exc:
            raise RecordingError(f'{self.path}: corrupt metadata record: {exc}') from exc

    def _yield_message(self, record: bytes, topics: dict, last_yield: dict):
        channel_id, _, log_time, publish_time = struct.unpack_from('<HIQQ', record, 0)
        topic = self.channels[channel_id][0]
        if not 0 <= publish_time - last_yield[topic] < topics[topic]:
            last_yield[topic] = publish_time
            yield topic, log_time, publish_time, record[22:]

    def _chunk_messages(self, pending: tuple, topics: dict, last_yield: dict):
        """Messages of wanted topics in one chunk, via its message indexes when present.

        A chunk is read and decompressed only when it holds a wanted (or unknown) channel.
        """
        offset, length, indexes = pending
        known = bool(indexes) and all(cid in self.channels for cid in indexes)
        if known and not any(self.channels[cid][0] in topics for cid in indexes):
            return
        resume = self._file.tell()
        self._file.seek(offset)
        chunk = self._file.read(length)
        self._file.seek(resume)
        data = self._decompress(chunk)
        if not known:
            yield from self._scan_chunk(data, topics, last_yield)
            return
        wanted = [cid for cid in indexes if self.channels[cid][0] in topics]
        if not wanted:
            return
        entries = []
        for cid in wanted:
            body = indexes[cid]
            size, = struct.unpack_from('<I', body, 2)
            pairs = np.frombuffer(body, dtype='<u8', count=size // 8, offset=6).reshape(-1, 2)
            period = topics[self.channels[cid][0]]
            if period > 0 and len(pairs):
                pairs = pairs[_decimate(_publish_times(data, pairs[:, 1]), period, last_yield[self.channels[cid][0]])]
            entries.append(pairs)
        order = np.concatenate(entries) if entries else np.empty((0, 2), np.uint64)
        order = order[np.argsort(order[:, 1], kind='stable')]
        view = memoryview(data)
        for _, offset in order.tolist():
            length, = struct.unpack_from('<Q', data, offset + 1)
            record = view[offset + 9:offset + 9 + length]
            channel_id, _, log_time, publish_time = struct.unpack_from('<HIQQ', record, 0)
            topic = self.channels[channel_id][0]
            last_yield[topic] = publish_time
            yield topic, log_time, publish_time, bytes(record[22:])

    def _scan_chunk(self, data: bytes, topics: dict, last_yield: dict):
        offset, end = 0, len(data)
        while offset + 9 <= end:
            opcode, length = _RECORD.unpack_from(data, offset)
            body = data[offset + 9:offset + 9 + length]
            offset += 9 + length
            yield from self._record(opcode, body, topics, last_yield)

    def _record(self, opcode: int, body: bytes, topics: dict, last_yield: dict):
        """A schema, channel or message record outside the message indexes' fast path."""
        if opcode in (OP_SCHEMA, OP_CHANNEL):
            self._definition(opcode, body)
        elif opcode == OP_MESSAGE:
            channel_id, = struct.unpack_from('<H', body, 0)
            if channel_id in self.channels and self.channels[channel_id][0] in topics:
                yield from self._yield_message(body, topics, last_yield)

    def _decompress(self, chunk: bytes) -> bytes:
        try:
            _, _, uncompressed_size, crc = struct.unpack_from('<QQQI', chunk, 0)
            compression, offset = _string(chunk, 28)
            size, = struct.unpack_from('<Q', chunk, offset)
            payload = chunk[offset + 8:offset + 8 + size]
            if compression == 'zstd':
                import zstandard
                data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=uncompressed_size)
            elif compression == 'lz4':
                import lz4.frame
                data = lz4.frame.decompress(payload)
            elif compression == '':
                data = payload
            else:
                raise RecordingError(f'{self.path}: unsupported chunk compression {compression!r}')
        except RecordingError:
            raise
        except Exception as exc:  # zstd/lz4 errors have no common base class
            raise RecordingError(f'{self.path}: corrupt chunk: {exc}') from exc
        if len(data) != uncompressed_size or (crc and zlib.crc32(data) != crc):
            raise RecordingError(f'{self.path}: corrupt chunk (size or CRC mismatch)')
        return data


def _string(buffer, offset: int) -> tuple[str, int]:
    size, = struct.unpack_from('<I', buffer, offset)
    offset += 4
    if offset + size > len(buffer):
        raise struct.error('string runs past the record')
    return bytes(buffer[offset:offset + size]).decode(), offset + size


def _publish_times(data: bytes, offsets: np.ndarray) -> np.ndarray:
    """The publish times of the message records starting at offsets in an uncompressed chunk."""
    at = offsets.astype(np.int64)[:, None] + (_PUBLISH_TIME_OFFSET + np.arange(8))
    return np.frombuffer(data, np.uint8)[at].copy().view('<u8').ravel().astype(np.int64)


def _decimate(times: np.ndarray, period: int, previous: int) -> np.ndarray:
    """Indices keeping at most one message per period of times (first of each), continuing from
    previous. A time earlier than the last kept one (a device clock reset) starts afresh."""
    if np.all(np.diff(times) >= 0) and times[0] >= previous:
        # Python only loops over the first message of each period bucket, not over every message.
        buckets = (times - times[0]) // period
        candidates = np.unique(buckets, return_index=True)[1].tolist()
    else:
        candidates = range(len(times))
    keep = []
    last = previous
    for index in candidates:
        if not 0 <= times[index] - last < period:
            keep.append(index)
            last = int(times[index])
    return np.asarray(keep, dtype=np.int64)


def find_recording(session) -> pathlib.Path:
    """The .mcap file of a session: the path itself, or the newest .mcap in a directory.

    Raises:
        RecordingError: nothing to read.
    """
    path = pathlib.Path(session)
    if path.is_dir():
        files = sorted(path.glob('*.mcap'), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RecordingError(f'{path}: directory holds no .mcap recording')
        return files[-1]
    if not path.exists():
        raise RecordingError(f'{path}: no such file or directory')
    return path


__all__ = ['RecordingError', 'McapRecorder', 'SessionReader', 'ros2_schema', 'message_definition',
           'find_recording', 'header_stamp_ns', 'split_type']
