"""Hostile and unlucky names from a real program: a script in a directory whose name is not UTF-8,
argv with a 0xff byte and an escape sequence, a function whose name is 2000 characters long (it
spins: its samples must be kept, the name clipped with a mark), a function renamed to terminal
escapes, a thread named with BEL and ESC. The recording must analyse, every byte of argv and of the
file name must round-trip (JSON keeps them as base64 beside the text), and the text report must
show every control character as a visible escape."""
import base64
import json
import os
import subprocess

import harness
from harness import expect

PROGRAM = r'''
import sys, threading, time

SECONDS = float(sys.argv[1])
LONG = "f_" + "x" * 2000

# A 2000-character function name (generated code makes such names).
namespace = {"time": time}
exec(compile("def %s(seconds):\n    end = time.perf_counter() + seconds\n    while time.perf_counter() < end:\n"
             "        pass\n" % LONG, __file__, "exec"), namespace)
long_named = namespace[LONG]

def evil():
    time.sleep(SECONDS)

# A name no identifier can have, as a code object can: clears the screen, retitles the terminal.
hostile = "evil\x1b[2J\x1b]0;pwned\x07"
if sys.version_info >= (3, 11):
    evil.__code__ = evil.__code__.replace(co_name=hostile, co_qualname=hostile)
else:
    evil.__code__ = evil.__code__.replace(co_name=hostile)

thread = threading.Thread(target=evil, name="sleeper\x1b[K\x07")
thread.start()
long_named(SECONDS)
thread.join()
'''


def test(ctx):
    directory = os.path.join(os.fsencode(ctx.tmp), b"caf\xe9\xff dir")
    os.mkdir(directory)
    script = os.path.join(directory, b"prog.py")
    with open(script, "w") as f:
        f.write(PROGRAM)
    argv = [os.fsencode(ctx.python), script, b"2", b"\xff\x1b[2J"]
    out = ctx.path("names.swp")
    proc = subprocess.run([ctx.swprof, "record", "-q", "-o", out, "--"] + argv, capture_output=True, timeout=120)
    stderr = proc.stderr.decode("utf-8", "replace")
    expect(proc.returncode == 0, "recorded: %s" % stderr)
    expect("\x1b" not in stderr, "no escape sequence in record's own output: %r" % stderr)

    doc = ctx.analyze_json(out, "--by-thread")
    rec = doc["recording"]
    expect(base64.b64decode(rec["command_base64"]) == b" ".join(argv), "every byte of argv round-trips: %r" % rec)
    errors = rec["errors"] / max(1, rec["samples"] + rec["errors"])
    expect(errors < 0.05, "samples are kept, not errors: %d errors of %d" % (rec["errors"], rec["samples"]))

    nodes = list(harness.all_nodes(doc["roots"]))
    long_nodes = [n for n in nodes if n["function"].startswith("f_xxxx")]
    expect(len(long_nodes) == 1, "the long-named function is one node")
    long_node = long_nodes[0]
    expect(long_node["function"] == "f_" + "x" * 1022 + "…[+978 chars]", "clipped with a mark: %r…" % long_node["function"][-20:])
    expect(base64.b64decode(long_node["file_base64"]) == script, "the script's file name round-trips byte for byte")
    main = [r for r in doc["roots"] if r["function"].endswith("(MainThread)")][0]
    expect(long_node["total_ms"] >= 0.8 * main["total_ms"],
           "the spinning function keeps its samples: %.0f of %.0f ms" % (long_node["total_ms"], main["total_ms"]))
    evil = [n for n in nodes if n["function"] == "evil\x1b[2J\x1b]0;pwned\x07"]
    expect(evil, "the renamed function is there, exactly")
    expect(any(r["function"].endswith("(sleeper\x1b[K\x07)") for r in doc["roots"]), "the thread name, exactly")

    for args in ([], ["--by-thread"], ["--lines"], ["--segments"]):
        text = ctx.run_swprof("analyze", out, *args)
        expect(text.returncode == 0, "analyze %s: %s" % (args, text.stderr))
        bad = [c for c in text.stdout if (c < " " and c != "\n") or "\x80" <= c < "\xa0"]
        expect(not bad, "control characters %r reach the terminal in analyze %s" % (bad[:5], args))
    text = ctx.run_swprof("analyze", out, "--by-thread").stdout
    for shown in ("evil\\x1b[2J\\x1b]0;pwned\\x07", "sleeper\\x1b[K\\x07", "caf\\xe9\\xff dir", "\\xff\\x1b[2J"):
        expect(shown in text, "%r shown as a visible escape" % shown)
    print("ok: names escaped in text, exact in JSON, the long one clipped and sampled")

    svg = ctx.path("names.svg")
    proc = ctx.run_swprof("flamegraph", out, "-o", svg)
    expect(proc.returncode == 0 and "\x1b" not in open(svg, encoding="utf-8").read(), "the flame graph: %s" % proc.stderr)
    folded = ctx.run_swprof("analyze", out, "--format", "collapsed").stdout
    expect(all(c >= " " or c == "\n" for c in folded), "collapsed stacks carry no control characters")


if __name__ == "__main__":
    harness.main(test, __doc__)
