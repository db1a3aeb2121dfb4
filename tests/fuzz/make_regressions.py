#!/usr/bin/env python3
"""Writes the regression inputs for the failures issue 11 reported (found by hand and by fuzzing
before these targets existed) into regressions/<target>/: every ctest run replays them.

    tests/fuzz/make_regressions.py
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import swpfile  # noqa: E402


def write(target, name, data):
    path = os.path.join(HERE, "regressions", target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def framed(*records):
    return b"".join(struct.pack("<BI", kind, len(raw)) + raw for kind, raw in records)


def main():
    # A recursion 10,000 frames deep (the reports recursed once per frame).
    n = 10000
    strings = ["/app/deep.py", "recurse"]
    frames = [(1, 0, 3, 2)]
    cols = dict(time_deltas=[10000] * 2, threads=[0] * 2, stacks=[0, 0], walls=[10000] * 2, cpus=[0] * 2, flags=[0] * 2,
                segments=[0] * 2)
    deep_chunk = swpfile.chunk(strings, frames, [[0] * n], [(1, "t")], sample_columns=cols)
    write("fuzz_reader", "deep-stack-10000-frames.swp", swpfile.simple_file(strings, frames, [[0] * n], [(1, "t")], cols))
    write("fuzz_reader_framed", "deep-stack-10000-frames", framed((1, swpfile.header()), (2, deep_chunk)))

    write("fuzz_reader", "stdlib-path-50000-digits.swp",
          swpfile.one_stack_file(["main"], file_name="/usr/lib/python3." + "1" * 50000 + "/x.py"))
    bomb = swpfile.file_bytes(swpfile.record(1, swpfile.zstd_frame(swpfile.header())),
                              swpfile.record(2, swpfile.zstd_frame((0, 512 << 20))))
    write("fuzz_reader", "bomb-512MiB-of-zeros.swp", bomb)

    for name, deltas, walls in (("time-int64-max", [2**63 - 1, 1], [1, 1]), ("time-overflows", [2**62, 2**62], [1, 1]),
                                ("weight-int64-max", [1, 1], [2**63 - 1, 1])):
        c = dict(time_deltas=deltas, threads=[0, 0], stacks=[0, 0], walls=walls, cpus=[0, 0], flags=[0, 0], segments=[1, 1])
        args = (["/a.py", "f"], [(1, 0, 1, 1)], [[0]], [(1, "t")], c)
        kw = dict(segments=[(1, 0, -(2**62), 0)], segment_ends=[(1, 2**62)])
        write("fuzz_reader", name + ".swp", swpfile.simple_file(*args, **kw))
        write("fuzz_reader_framed", name, framed((1, swpfile.header()), (2, swpfile.chunk(*args[:4], sample_columns=c, **kw))))
    write("fuzz_reader", "names-with-escapes.swp",
          swpfile.one_stack_file(["m\x1b[2J", "n\n\r\x07"], file_name="/\x1b]0;t\x07/\udcff.py", thread_name="\x9b\u202e"))

    base = 1700000000000
    write("fuzz_skywalking_import", "deep-10000-frames.json",
          json.dumps([{"traceSegmentId": "s", "time": base, "stack": {"codeSignatures": ["f%d" % k for k in range(n)]}}]))
    write("fuzz_skywalking_import", "time-int64-max.json",
          json.dumps([{"traceSegmentId": "s", "time": str(2**63 - 1), "sequence": 0}]))
    write("fuzz_skywalking_import", "time-decades-apart.json",
          json.dumps([{"traceSegmentId": "s", "time": base, "sequence": 0},
                      {"traceSegmentId": "s", "time": base + 40 * 365 * 86400000, "sequence": 1}]))
    write("fuzz_skywalking_import", "time-backwards.json",
          json.dumps([{"traceSegmentId": "s", "time": base + t, "sequence": i, "stack": {"codeSignatures": ["a"]}}
                      for i, t in enumerate((0, 20, 10, 30))]))
    write("fuzz_skywalking_import", "deep-unknown-field.json",
          '[{"traceSegmentId": "s", "time": 1700000000000, "x": ' + "[" * 20000 + "]" * 20000 + "}]")
    write("fuzz_skywalking_import", "truncated.json", '[{"traceSegmentId": "s", "time": 17000000')


if __name__ == "__main__":
    main()
