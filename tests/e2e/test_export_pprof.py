"""pprof export, opened by go tool pprof (Debian's golang-go): -top by wall and by CPU time shows
the functions analyze shows with the same flat and cum values; -raw parses every sample (their
counts and wall times add up to the recording's) with thread, segment and greenlet labels; a
recording with segments is cut at the entry function as analyze cuts it; -tags lists the labels."""
import os
import re
import sys

import formats
import harness
from harness import expect, expect_close


def test(ctx):
    if formats.go_missing():
        print("SKIP: " + formats.go_missing())
        sys.exit(harness.SKIP)

    # A plain recording: nested sleeps, then some CPU work in two threads.
    swp = ctx.path("nested.swp")
    ctx.record(swp, [ctx.python, os.path.join(harness.SAMPLES, "nested_sleeps.py"), "10"])
    out = ctx.path("nested.pb.gz")
    proc = ctx.run_swprof("export", swp, "--format", "pprof", "-o", out)
    expect(proc.returncode == 0, "export: %s" % proc.stderr)
    expect(open(out, "rb").read(2) == b"\x1f\x8b", "the file is gzip")

    for mode, index in (("wall", "wall"), ("cpu", "cpu")):
        doc = ctx.analyze_json(swp, "--mode", mode)
        rows, total, text = formats.top(out, index)
        print([l for l in text.splitlines() if "Total samples" in l][0].strip())
        expect_close(total, formats.total_ms(doc["roots"]), 0.05, "pprof's %s total (ms) vs analyze" % mode)
        formats.expect_top_matches(rows, formats.per_function(doc["roots"]), "-sample_index=%s" % index)
    rows, _, _ = formats.top(out, "wall")
    expect(list(sorted(rows, key=lambda f: -rows[f][0]))[:2] == ["methodD", "methodC"],
           "methodD then methodC lead pprof's -top by flat wall time")

    raw = formats.raw(out)
    doc = ctx.analyze_json(swp)
    types = raw["types"]
    expect(types[:3] == ["samples/count", "wall/nanoseconds", "cpu/nanoseconds"], "sample types: %s" % types)
    samples = raw["samples"]
    expect(sum(s["values"][0] for s in samples) == doc["recording"]["samples"],
           "-raw: %d samples counted, the recording has %d" % (sum(s["values"][0] for s in samples), doc["recording"]["samples"]))
    expect_close(sum(s["values"][1] for s in samples) / 1e6, formats.total_ms(doc["roots"], "wall_ms"), 0.01,
                 "-raw: wall time of all samples (ms)")
    # Thread names as analyze --by-thread shows them: "thread TID (NAME)", or no name when unknown.
    names = {}
    for r in ctx.analyze_json(swp, "--by-thread")["roots"]:
        m = re.match(r"thread (\d+)(?: \((.*)\))?$", r["function"])
        names[m.group(1)] = m.group(2)
    for s in samples:
        expect(s["locations"] and all(l in raw["locations"] for l in s["locations"]), "a sample's locations: %s" % s)
        tid = s["labels"].get("thread_id")
        expect(tid in names and s["labels"].get("thread_name") == names[tid], "labels %s, threads %s" % (s["labels"], names))
    print("ok: -raw parses %d pprof samples holding all %d recorded samples, each with thread labels"
          % (len(samples), doc["recording"]["samples"]))
    if "gil/nanoseconds" in types:
        formats.top(out, "gil")
        print("ok: -sample_index=gil")
    leaf = raw["locations"][samples[0]["locations"][0]]
    print("a location as pprof reads it: %s" % leaf)

    # Segments: one per request; stacks start at the entry function, labels name the segment.
    seg_swp = ctx.path("requests.swp")
    ctx.record(seg_swp, [ctx.python, os.path.join(harness.SAMPLES, "release_compare.py"), "2", "6"],
               options=["--entry", "handle"])
    seg_out = ctx.path("requests.pb.gz")
    proc = ctx.run_swprof("export", seg_swp, "-f", "pprof", "-o", seg_out)
    expect(proc.returncode == 0, "export: %s" % proc.stderr)
    doc = ctx.analyze_json(seg_swp)
    rows, total, _ = formats.top(seg_out, "wall")
    formats.expect_top_matches(rows, formats.per_function(doc["roots"]), "segments, -sample_index=wall")
    expect("<module>" not in rows, "stacks start at the entry function (no <module>): %s" % sorted(rows))
    raw = formats.raw(seg_out)
    seen = sorted({int(s["labels"].get("segment_id", 0)) for s in raw["samples"]})
    expect(seen == list(range(1, 7)), "segment_id labels %s, expected 1..6" % seen)
    tags = formats.pprof("-tags", seg_out).stdout
    expect("segment_id" in tags and "thread_id" in tags, "pprof -tags lists segment_id and thread_id:\n" + tags)
    print("ok: 6 segments as segment_id labels; pprof -tags lists them")
    # --segment selects as analyze does.
    proc = ctx.run_swprof("export", seg_swp, "-f", "pprof", "--segment", "2", "-o", seg_out)
    expect(proc.returncode == 0, "export --segment 2: %s" % proc.stderr)
    one = ctx.analyze_json(seg_swp, "--segment", "2")
    _, total, _ = formats.top(seg_out, "wall")
    expect_close(total, formats.total_ms(one["roots"]), 0.05, "segment 2's total in pprof vs analyze (ms)")


if __name__ == "__main__":
    harness.main(test, __doc__)
