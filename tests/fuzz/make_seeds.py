#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from small real recordings made here and now:

    tests/fuzz/make_seeds.py --swprof build/swprof --python python3 --out build/fuzz-corpus

fuzz_reader gets the .swp files; fuzz_reader_framed the same records decompressed, in its
[kind][u32 length][payload] form (zstd -d does the decompressing); fuzz_skywalking_import the
SkyWalking export of a recording with segments and a hand-written example with gaps, strings for
times and unknown fields. Standard library and the zstd command only."""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "samples")


def records(data):
    at = 8
    while at + 5 <= len(data):
        size, kind = struct.unpack_from("<IB", data, at)
        payload = data[at + 5:at + 5 + size]
        if len(payload) < size:
            return
        yield kind, payload
        at += 5 + size


def framed(swp):
    out = bytearray()
    for kind, payload in records(swp):
        raw = subprocess.run(["zstd", "-dcq"], input=payload, capture_output=True, check=True).stdout
        out += struct.pack("<BI", kind, len(raw)) + raw
    return bytes(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swprof", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    dirs = {t: os.path.join(args.out, t) for t in ("fuzz_reader", "fuzz_reader_framed", "fuzz_skywalking_import")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    runs = {
        "nested": ([], [os.path.join(SAMPLES, "nested_sleeps.py"), "1"]),
        "known": ([], [os.path.join(SAMPLES, "known_stacks.py"), "--seconds", "1"]),
        "gil": (["--gil"], [os.path.join(SAMPLES, "gil_threads.py"), "--seconds", "0.5"]),
        "entry": (["--entry", "inner", "--entry", "method"], [os.path.join(SAMPLES, "known_stacks.py"), "--seconds", "1"]),
    }
    with tempfile.TemporaryDirectory(prefix="swprof-seeds-") as tmp:
        for name, (options, program) in runs.items():
            swp = os.path.join(tmp, name + ".swp")
            proc = subprocess.run([args.swprof, "record", "-q", "-i", "5ms", "-o", swp] + options + ["--", args.python] + program,
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode != 0 or not os.path.exists(swp):
                print("seeds: recording %s failed: %s" % (name, proc.stderr.strip()), file=sys.stderr)
                continue
            data = open(swp, "rb").read()
            open(os.path.join(dirs["fuzz_reader"], name + ".swp"), "wb").write(data)
            open(os.path.join(dirs["fuzz_reader_framed"], name + ".framed"), "wb").write(framed(data))
            exported = os.path.join(tmp, name + ".json")
            if subprocess.run([args.swprof, "export", swp, "--format", "skywalking", "-o", exported],
                              capture_output=True).returncode == 0:
                open(os.path.join(dirs["fuzz_skywalking_import"], name + ".json"), "wb").write(open(exported, "rb").read())
    base = 1700000000000
    example = [{"taskId": "t", "traceSegmentId": "a", "time": str(base + 10 * i) if i % 2 else base + 10 * i,
                "sequence": i, "stack": {"codeSignatures": ["m.py.run: 1", "m.py.work: %d" % (i % 3)]}} for i in range(6)]
    example.append({"task_id": "u", "trace_segment_id": "b", "time": base + 5, "stack": {"code_signatures": []},
                    "extra": [1, {"x": None}, "s\u00e9"]})
    open(os.path.join(dirs["fuzz_skywalking_import"], "example.json"), "w").write(json.dumps(example))
    open(os.path.join(dirs["fuzz_skywalking_import"], "wrapped.json"), "w").write(json.dumps({"snapshots": example[:2]}))
    for t, d in dirs.items():
        print("seeds: %s: %d files" % (t, len(os.listdir(d))))


if __name__ == "__main__":
    main()
