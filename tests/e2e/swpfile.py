"""Writes .swp snapshot files byte by byte, for tests of what swprof does with files it did not
write: hostile names, impossible times, decompression bombs, absurd depths. Standard library only:
protobuf messages are encoded by hand (proto/swprof.proto gives the field numbers) and records are
zstd frames of raw or RLE blocks (RFC 8878), which need no compressor.
"""
import struct

MAGIC = b"\x89SWP\r\n\x1a\n"
HEADER, CHUNK, FOOTER = 1, 2, 3


def varint(n):
    n &= (1 << 64) - 1  # negative int64: two's complement, ten bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def field(number, value):
    """A length-delimited field (bytes, str, an encoded message) or a varint field (int)."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    return varint(number << 3 | 2) + varint(len(value)) + value


def packed(number, values, encode=varint):
    return field(number, b"".join(encode(v) for v in values))


def message(*fields):
    return b"".join(fields)


def header(command=("python3", "app.py"), python="3.11.7", interval_us=10000, start_unix_us=1700000000000000,
           hostname="host", extra=b""):
    return message(field(1, 1), field(2, "0.1.0"), *[field(3, a) for a in command], field(4, 4242),
                   field(6, python), field(7, "shared"), field(9, interval_us), field(10, start_unix_us),
                   field(11, hostname), field(18, "record"), extra)


def frame(function, file, line, first_line):
    return message(field(1, function), field(2, file), field(3, line), field(4, first_line))


def samples(time_deltas, threads, stacks, walls, cpus, flags, segments):
    return message(packed(1, time_deltas, lambda v: varint(zigzag(v))), packed(2, threads), packed(3, stacks),
                   packed(4, walls), packed(5, cpus), packed(6, flags), packed(7, segments))


def chunk(strings=(), frames=(), stacks=(), threads=(), segments=(), segment_ends=(), sample_columns=None):
    """frames: (function id, file id, line, first line); stacks: lists of frame ids; threads: (tid,
    name); segments: (id, thread, start_us, root_depth); segment_ends: (id, end_us);
    sample_columns: the keyword arguments of samples()."""
    parts = [field(1, s) for s in strings]
    parts += [field(2, frame(*f)) for f in frames]
    parts += [field(3, packed(1, s)) for s in stacks]
    parts += [field(4, message(field(1, tid), field(2, name))) for tid, name in threads]
    parts += [field(5, message(field(1, i), field(2, t), field(3, start), field(4, depth))) for i, t, start, depth in segments]
    parts += [field(6, message(field(1, i), field(2, end))) for i, end in segment_ends]
    if sample_columns:
        parts.append(field(7, samples(**sample_columns)))
    return message(*parts)


def footer(duration_us=1000000, samples_count=0):
    return message(field(1, duration_us), field(2, samples_count), field(18, "program exited"))


def zstd_frame(*pieces):
    """A zstd frame of raw blocks for bytes pieces and RLE blocks for (byte, count) pieces: RLE makes
    a frame that decompresses to far more than it is. Content size in the header, no checksum."""
    blocks = []
    size = 0
    for piece in pieces:
        if isinstance(piece, tuple):
            byte, count = piece
            size += count
            while count > 0:
                n = min(count, 1 << 17)
                blocks.append((1, n, bytes([byte])))
                count -= n
        else:
            size += len(piece)
            for at in range(0, len(piece), 1 << 17):
                chunk_ = piece[at:at + (1 << 17)]
                blocks.append((0, len(chunk_), chunk_))
    if not blocks:
        blocks.append((0, 0, b""))
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    out.append(0xE0)  # 8-byte content size, single segment, no checksum, no dictionary
    out += struct.pack("<Q", size)
    for i, (kind, n, body) in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        out += struct.pack("<I", last | kind << 1 | n << 3)[:3] + body
    return bytes(out)


def record(kind, payload_frame):
    return struct.pack("<IB", len(payload_frame), kind) + payload_frame


def file_bytes(*records):
    return MAGIC + b"".join(records)


def simple_file(strings, frames, stacks, threads, sample_columns, segments=(), segment_ends=(), header_msg=None,
                with_footer=True):
    """A whole file: header, one chunk, footer."""
    recs = [record(HEADER, zstd_frame(header_msg if header_msg is not None else header())),
            record(CHUNK, zstd_frame(chunk(strings, frames, stacks, threads, segments, segment_ends, sample_columns)))]
    if with_footer:
        recs.append(record(FOOTER, zstd_frame(footer(samples_count=len(sample_columns["threads"])))))
    return file_bytes(*recs)


def one_stack_file(function_names, file_name="/app/main.py", thread_name="MainThread", samples_count=3, **kw):
    """A file whose samples all have one stack of the given functions (root first)."""
    strings = [file_name] + list(function_names)
    frames = [(i + 1, 0, i + 1, i + 1) for i in range(len(function_names))]
    n = samples_count
    cols = dict(time_deltas=[10000] * n, threads=[0] * n, stacks=[0] * n, walls=[10000] * n, cpus=[0] * n,
                flags=[0] * n, segments=[0] * n)
    return simple_file(strings, frames, [list(range(len(function_names)))], [(1234, thread_name)], cols, **kw)
