"""Nested sleeps: methodC and methodD appear under methodB with their exact file:line, and their
totals per iteration are 40 ms and 60 ms within ±15 %; --lines gives the executing lines."""
import os

import harness
from harness import expect, expect_close, find_path

ITERATIONS = 15


def test(ctx):
    sample = os.path.join(harness.SAMPLES, "nested_sleeps.py")
    out = ctx.path("nested.swp")
    ctx.record(out, [ctx.python, sample, str(ITERATIONS)])
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
    expect(set(children) == {"methodC", "methodD"}, "methodB's children: %s" % sorted(children))
    for name in ("methodC", "methodD"):
        c = children[name]
        expect(c["file"] == sample and c["line"] == defs[name],
               "%s at %s:%s, expected line %d" % (name, c["file"], c["line"], defs[name]))
    expect_close(children["methodC"]["total_ms"] / ITERATIONS, 40.0, 6.0, "methodC ms per iteration")
    expect_close(children["methodD"]["total_ms"] / ITERATIONS, 60.0, 9.0, "methodD ms per iteration")
    ratio = children["methodC"]["total_ms"] / children["methodD"]["total_ms"]
    expect_close(ratio, 40 / 60, 40 / 60 * 0.15, "methodC : methodD")
    expect(children["methodC"]["self_ms"] == children["methodC"]["total_ms"], "methodC is a leaf")

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
