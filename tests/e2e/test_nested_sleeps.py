"""Nested sleeps: methodC and methodD appear under methodB with their exact file:line, and their
totals are what the program measured its sleeps took (40 and 60 ms per iteration on a quiet
machine, more on a busy one) within a tolerance derived from the recording's own sample weights;
--lines gives the executing lines."""
import json
import os

import harness
from harness import expect, expect_close, find_path

ITERATIONS = 15


def test(ctx):
    sample = os.path.join(harness.SAMPLES, "nested_sleeps.py")
    out, measured_path = ctx.path("nested.swp"), ctx.path("measured.json")
    ctx.record(out, [ctx.python, sample, str(ITERATIONS), measured_path])
    measured = json.load(open(measured_path))
    defs = harness.def_lines(sample)

    doc = ctx.analyze_json(out)
    rec = doc["recording"]
    expect(rec["python"].startswith("%d.%d." % ctx.version), "python version %s" % rec["python"])
    expect(rec["errors"] <= max(2, rec["samples"] // 200), "errors: %d of %d" % (rec["errors"], rec["samples"]))
    path = find_path(doc["roots"], ["<module>", "main", "methodA", "methodB"], ctx.version, start_anywhere=False)
    expect(path is not None, "no <module> -> main -> methodA -> methodB path in %s" % [r["function"] for r in doc["roots"]])
    for node, name in zip(path[1:], ["main", "methodA", "methodB"]):
        expect(node["file"] == sample and node["line"] == defs[name],
               "%s at %s:%s, expected %s:%s" % (name, node["file"], node["line"], sample, defs[name]))
    method_b = path[-1]
    children = {c["function"]: c for c in method_b["children"]}
    # (A sample taken while the thread went from one sleep to the other, its frames changing under
    # every read, keeps methodB and its callers under <frames changed while read>: honest, rare.)
    unsteady = children.pop("<frames changed while read>", None)
    expect(set(children) == {"methodC", "methodD"}, "methodB's children: %s" % sorted(children))
    expect(unsteady is None or unsteady["samples"] <= max(2, rec["samples"] // 200),
           "methodB's unsteady samples: %s" % (unsteady and unsteady["samples"]))
    for name in ("methodC", "methodD"):
        c = children[name]
        expect(c["file"] == sample and c["line"] == defs[name],
               "%s at %s:%s, expected line %d" % (name, c["file"], c["line"], defs[name]))
    # Two switches between methodC and methodD per iteration.
    tolerance = harness.sampling_tolerance(doc, 2 * ITERATIONS)
    for name in ("methodC", "methodD"):
        expect_close(children[name]["total_ms"], measured[name + "_ms"], tolerance, "%s total ms vs measured" % name)
    expect(measured["methodC_ms"] >= 40 * ITERATIONS * 0.99 and measured["methodD_ms"] >= 60 * ITERATIONS * 0.99,
           "the program slept as long as asked: %s" % measured)
    # methodC calls no Python function. A sample whose stack changed under every read (the thread
    # was between methodC and methodD) keeps the frames it read alike under <frames changed while
    # read>: no other child, and no more of them than errors are allowed.
    inner = children["methodC"]["children"]
    expect(all(c["function"] == "<frames changed while read>" for c in inner), "methodC is a leaf: %s" % inner)
    expect(sum(c["samples"] for c in inner) <= max(2, rec["samples"] // 200), "methodC's unsteady samples: %s" % inner)

    # --lines: the executing line in the leaf and the call site in every parent.
    doc = ctx.analyze_json(out, "--lines")
    sleep_c = harness.line_of(sample, "time.sleep(0.040)")
    sleep_d = harness.line_of(sample, "time.sleep(0.060)")
    call_c = harness.line_of(sample, "    methodC()")
    call_d = harness.line_of(sample, "    methodD()")
    call_b = harness.line_of(sample, "    methodB()")
    call_a = harness.line_of(sample, "        methodA()")
    nodes = list(harness.all_nodes(doc["roots"]))
    def lines_of(name):
        return sorted({n["line"] for n in nodes if n["function"] == name})
    expect(lines_of("methodC") == [sleep_c], "methodC lines %s, expected [%d]" % (lines_of("methodC"), sleep_c))
    expect(lines_of("methodD") == [sleep_d], "methodD lines %s, expected [%d]" % (lines_of("methodD"), sleep_d))
    expect(lines_of("methodB") == sorted([call_c, call_d]), "methodB lines %s" % lines_of("methodB"))
    expect(lines_of("methodA") == [call_b], "methodA lines %s" % lines_of("methodA"))
    expect(call_a in lines_of("main"), "main lines %s, expected %d" % (lines_of("main"), call_a))


if __name__ == "__main__":
    harness.main(test, __doc__)
