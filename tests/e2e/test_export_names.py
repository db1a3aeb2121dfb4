"""Hard names and bad recordings, through every format and its consumer. A program whose file name
holds <, &, quotes, ; and bytes that are not UTF-8, with a function named a<b>&c"d'e;f<newline>g<lone
surrogate>h (its code object renamed); a recording with no samples (an --entry never called); a
recording cut short (the recorder killed mid-file). Each is exported to pprof (go tool pprof -top
and -raw), speedscope (schema and app), Chrome trace (format rules and speedscope's importer),
collapsed stacks (their line grammar), SkyWalking JSON (or one clear error without segments), the
flame graph (xmllint, Chromium) and diff/analyze JSON: every consumer opens every file, and the
name arrives as valid UTF-8 with what no format can carry (the newline, the stray bytes) replaced
by U+FFFD, the rest intact."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import browser as webdriver
import formats
import harness
import speedscope_app
from harness import expect

# The function's name as written, and as every export must show it.
ODD_NAME = 'a<b>&c"d\'e;f\ng\udcffh'
SHOWN = 'a<b>&c"d\'e;f\ufffdg\ufffdh'
JSON_SHOWN = 'a<b>&c"d\'e;f\ng\ufffdh'  # JSON formats: control characters escaped losslessly
TERMINAL_SHOWN = 'a<b>&c"d\'e;f\\x0ag\\xffh'  # analyze's text: control and non-UTF-8 bytes as visible escapes
FILE_BYTES = b"odd_\xff\xfe names;&<x>'q\".py"
FILE_SHOWN = "odd_\ufffd\ufffd names;&<x>'q\".py"

PROGRAM = r'''import time
def make(name):
    def f():
        time.sleep(0.05)
    kw = {"co_name": name}
    if hasattr(f.__code__, "co_qualname"):
        kw["co_qualname"] = name
    f.__code__ = f.__code__.replace(**kw)
    return f
weird = make(%r)
def never_called():
    pass
def run():
    for _ in range(5):
        weird()
run()
''' % ODD_NAME


class Consumers:
    def __init__(self, ctx):
        self.ctx = ctx
        self.root, _ = speedscope_app.tools()
        self.server = speedscope_app.Server(self.root, ctx.tmp)
        self.browser = webdriver.Browser(ctx.tmp)

    def close(self):
        self.browser.quit()
        self.server.close()

    def export(self, swp, fmt, out, *options):
        proc = self.ctx.run_swprof("export", swp, "--format", fmt, "-o", out, *options)
        return proc

    def speedscope_import(self, name, empty_ok=False):
        result = speedscope_app.open_profile(self.browser, self.server, name, view="sandwich")
        if empty_ok and result["alert"] == "Successfully imported profile, but it's empty!":
            print("ok: speedscope imported %s and says it is empty" % name)
            return ""
        speedscope_app.expect_imported(result, name)
        return self.browser.js("return document.body.innerText;")

    def run_all(self, swp, label, name=None, has_segments=False, empty=False):
        """Every format of `swp` opened by its consumer; `name`: a function every view must show;
        `empty`: no samples (speedscope then says the trace is empty, having read it)."""
        ctx = self.ctx
        out = lambda ext: ctx.path("%s.%s" % (label, ext))

        doc = ctx.analyze_json(swp)
        text = ctx.run_swprof("analyze", swp, "--min-percent", "0")
        expect(text.returncode == 0, "analyze: %s" % text.stderr)
        json_name = JSON_SHOWN if name == SHOWN else name
        if name:
            shown = TERMINAL_SHOWN if name == SHOWN else name
            expect(any(shown in l for l in text.stdout.splitlines()), "analyze's text shows %r on one line" % shown)

        # pprof
        proc = self.export(swp, "pprof", out("pb.gz"))
        expect(proc.returncode == 0, "%s: export pprof: %s" % (label, proc.stderr))
        rows, total, _ = formats.top(out("pb.gz"), "wall")
        raw = formats.raw(out("pb.gz"))
        expect(sum(s["values"][0] for s in raw["samples"]) == doc["recording"]["samples"], "%s: -raw holds every sample" % label)
        if name:
            expect(name in rows, "%s: pprof -top lists %r: %s" % (label, name, sorted(rows)))
        print("ok: %s: go tool pprof -top (%.1f ms) and -raw (%d samples)" % (label, total, len(raw["samples"])))

        # speedscope, per thread and per segment
        for options, file in (((), "speedscope.json"), (("--segments",), "segments.speedscope.json")):
            if options and not has_segments:
                proc = self.export(swp, "speedscope", out(file), *options)
                expect(proc.returncode == 1 and proc.stderr.startswith("swprof: ") and proc.stderr.count("\n") == 1,
                       "%s: --segments without segments: one clear line, got %r" % (label, proc.stderr))
                continue
            proc = self.export(swp, "speedscope", out(file), *options)
            expect(proc.returncode == 0, "%s: export speedscope: %s" % (label, proc.stderr))
            speedscope_app.validate(self.root, out(file))
            if name:
                frames = json.load(open(out(file), encoding="utf-8"))["shared"]["frames"]
                expect(any(f["name"] == json_name and f.get("file", "").endswith(FILE_SHOWN) for f in frames),
                       "%s: speedscope frames carry the name and file" % label)
            shown = self.speedscope_import(os.path.basename(out(file)))
            if name:
                # (The app draws a newline in a name as a space.)
                expect("".join(json_name.split()) in "".join(shown.split()), "%s: speedscope's app shows %r: %r" % (label, json_name, shown[shown.find("a<b"):][:40]))

        # Chrome trace
        proc = self.export(swp, "chrome", out("trace.json"))
        expect(proc.returncode == 0, "%s: export chrome: %s" % (label, proc.stderr))
        trace = json.load(open(out("trace.json"), encoding="utf-8"))
        formats.check_trace_format(trace)
        if name:
            expect(any(e["name"] == json_name for e in trace["traceEvents"]), "%s: the trace names %r" % (label, json_name))
        self.speedscope_import(os.path.basename(out("trace.json")), empty_ok=empty)

        # Collapsed stacks: "frame;frame;... N" per line, the count an integer.
        proc = self.export(swp, "collapsed", out("folded"))
        expect(proc.returncode == 0, "%s: export collapsed: %s" % (label, proc.stderr))
        lines = open(out("folded"), encoding="utf-8").read().splitlines()
        for line in lines:
            stack, _, count = line.rpartition(" ")
            expect(stack and count.isdigit(), "%s: collapsed line %r" % (label, line))
        if name:
            expect(any(name.replace(";", ":") in l for l in lines), "%s: collapsed names %r" % (label, name))
        print("ok: %s: %d collapsed lines, each 'stack count'" % (label, len(lines)))

        # SkyWalking JSON: only recordings with segments have trace segments to export.
        proc = self.export(swp, "skywalking", out("skywalking.json"))
        if has_segments:
            expect(proc.returncode == 0, "%s: export skywalking: %s" % (label, proc.stderr))
            records = json.load(open(out("skywalking.json"), encoding="utf-8"))
            if name:
                # The agent's signature holds the raw name: JSON carries the newline, as \n.
                expect(any(ODD_NAME.replace("\udcff", "\ufffd") in sig for r in records for sig in r["stack"]["codeSignatures"]),
                       "%s: signatures name it" % label)
        else:
            expect(proc.returncode == 1 and proc.stderr.startswith("swprof: "), "%s: skywalking: %r" % (label, proc.stderr))
        print("ok: %s: SkyWalking export %s" % (label, "parses" if has_segments else "refused in one line: " + proc.stderr.strip()))

        # The flame graph: well-formed XML that Chromium renders with its script running.
        svg = out("svg")
        proc = ctx.run_swprof("flamegraph", swp, "-o", svg, "--title", label + ' <&"> ' + ODD_NAME)
        expect(proc.returncode == 0, "%s: flamegraph: %s" % (label, proc.stderr))
        lint = subprocess.run(["xmllint", "--noout", svg], capture_output=True, text=True, timeout=60)
        expect(lint.returncode == 0, "%s: xmllint: %s" % (label, lint.stderr[:1000]))
        titles = [t.text for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}title")]
        if name:
            expect(any(t.startswith(name + " (" + FILE_SHOWN) or name in t for t in titles), "%s: SVG titles" % label)
        self.browser.open_loaded("file://" + svg)
        frames = self.browser.js("return document.querySelectorAll('#frames > g').length;")
        zoomed = self.browser.js("return document.getElementById('reset-zoom').classList.contains('off');")
        expect(frames >= 1 and zoomed, "%s: Chromium draws %d frames and the script ran" % (label, frames))
        print("ok: %s: xmllint and Chromium open the flame graph (%d frames)" % (label, frames))

        # diff against itself: JSON parses, nothing changed.
        proc = ctx.run_swprof("diff", swp, swp, "--format", "json")
        expect(proc.returncode == 0, "%s: diff: %s" % (label, proc.stderr))
        d = json.loads(proc.stdout)
        expect(all(abs(n["total_change_ms"]) < 1e-6 for n in d["nodes"]), "%s: a recording against itself: no change" % label)
        if name:
            expect(any(n["function"] == json_name for n in d["nodes"]), "%s: diff names %r" % (label, json_name))
        print("ok: %s: diff JSON parses" % label)


def middle_of_last_chunk(data):
    """An offset inside the file's last chunk record (proto/swprof.proto: an 8-byte magic, then
    records of u32 size, u8 kind, payload; kind 2 is a chunk): a recorder killed while writing it."""
    at, last = 8, None
    while at + 5 <= len(data):
        size, kind = int.from_bytes(data[at:at + 4], "little"), data[at + 4]
        if kind == 2:
            last = (at, size)
        at += 5 + size
    expect(last and last[0] > 8 + 5, "the recording has more than one record before its last chunk")
    return last[0] + 5 + last[1] // 2


def test(ctx):
    root, why = speedscope_app.tools()
    missing = [m for m in (formats.go_missing(), why, webdriver.missing()) if m]
    if not shutil.which("xmllint"):
        missing.append("xmllint not installed (apt-get install libxml2-utils)")
    if missing:
        print("SKIP: " + "; ".join(missing))
        sys.exit(harness.SKIP)

    folder = os.fsencode(ctx.path("odd dir"))
    os.makedirs(folder)
    program = os.path.join(folder, FILE_BYTES)
    with open(program, "wb") as f:
        f.write(PROGRAM.encode("utf-8", "surrogatepass"))
    odd = ctx.path("odd.swp")
    proc = subprocess.run([ctx.swprof.encode(), b"record", b"-q", b"-o", odd.encode(), b"--entry", b"run", b"--",
                           ctx.python.encode(), program], capture_output=True, timeout=120)
    expect(proc.returncode == 0, "record: %s" % proc.stderr.decode(errors="replace"))
    empty = ctx.path("empty.swp")
    proc = subprocess.run([ctx.swprof.encode(), b"record", b"-q", b"-o", empty.encode(), b"--entry", b"never_called", b"--",
                           ctx.python.encode(), program], capture_output=True, timeout=120)
    expect(proc.returncode == 0, "record: %s" % proc.stderr.decode(errors="replace"))
    full = ctx.path("full.swp")
    ctx.record(full, [ctx.python, os.path.join(harness.SAMPLES, "nested_sleeps.py"), "25"])
    data = open(full, "rb").read()
    cut = ctx.path("cut.swp")
    open(cut, "wb").write(data[:middle_of_last_chunk(data)])
    kept = ctx.analyze_json(cut)["recording"]
    expect(kept["truncated"] and kept["samples"] > 0, "the cut file reads as truncated, with samples: %s" % kept)

    consumers = Consumers(ctx)
    try:
        consumers.run_all(odd, "odd", name=SHOWN, has_segments=True)
        consumers.run_all(empty, "empty", empty=True)
        consumers.run_all(cut, "cut")
    finally:
        consumers.close()


if __name__ == "__main__":
    harness.main(test, __doc__)
