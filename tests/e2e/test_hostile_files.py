"""Snapshot files made to hurt, built here byte by byte (swpfile.py): decompression bombs, times at
the ends of int64, a 50,000-digit path (once a regex's stack overflow), names full of terminal
escapes, a 60,000-frame stack analysed with a 1 MiB stack, and stdout on a full device. Each gives
one line "swprof: ..." and a non-zero exit, or a correct analysis; never a crash, never gigabytes,
never an escape sequence on the terminal."""
import json
import os
import resource
import shutil
import subprocess

import harness
import swpfile
from harness import expect

SMALL_STACK = 1 << 20  # `ulimit -s 1024`


def run(ctx, *args, stack=None, stdout=subprocess.PIPE):
    """swprof with args; returns (returncode, stdout bytes, stderr text, peak RSS in MiB)."""
    def limit_stack():
        if stack:
            resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))
    proc = subprocess.Popen([ctx.swprof] + list(args), stdout=stdout, stderr=subprocess.PIPE, preexec_fn=limit_stack)
    out, err = proc.communicate(timeout=300)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the largest child so far: runs are checked in order
    return proc.returncode, out or b"", err.decode("utf-8", "replace"), usage.ru_maxrss / 1024.0


def one_line_error(result, *needles):
    code, _, err, _ = result
    lines = [l for l in err.splitlines() if l.strip()]
    expect(code not in (0, -11, -6) and code > 0, "exit status %d (stderr %r)" % (code, err))
    expect(len(lines) == 1 and lines[0].startswith("swprof: "), "one error line, got: %r" % err)
    for n in needles:
        expect(n in lines[0], "%r not in %r" % (n, lines[0]))
    expect(all(c >= " " for c in lines[0]), "no control character in %r" % lines[0])
    print("ok: %s" % lines[0][:160])


def write(ctx, name, data):
    path = ctx.path(name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def bombs(ctx):
    header = swpfile.record(swpfile.HEADER, swpfile.zstd_frame(swpfile.header()))
    # 45 KB decompressing to 8 GiB: 16 chunks of 512 MiB of zeros in RLE blocks.
    bomb = write(ctx, "bomb.swp", swpfile.file_bytes(header, *[swpfile.record(swpfile.CHUNK, swpfile.zstd_frame((0, 512 << 20)))
                                                              for _ in range(16)]))
    one_line_error(run(ctx, "analyze", bomb), "larger than its size justifies")
    # A valid chunk of 20 million samples whose columns are all zeros (140 MB of varints) in 5 KB.
    n = 20000000
    body = swpfile.chunk(strings=["f", "/a.py"], frames=[(0, 1, 1, 1)], stacks=[[0]], threads=[(1, "t")])
    column = lambda number: swpfile.varint(number << 3 | 2) + swpfile.varint(n)
    columns_size = sum(len(column(k)) + n for k in range(1, 8))
    pieces = [body + swpfile.varint(7 << 3 | 2) + swpfile.varint(columns_size)]
    for k in range(1, 8):
        pieces += [column(k), (0, n)]
    dense = write(ctx, "dense.swp", swpfile.file_bytes(header, swpfile.record(swpfile.CHUNK, swpfile.zstd_frame(*pieces))))
    one_line_error(run(ctx, "analyze", dense), "larger than its size justifies")
    for path in (bomb, dense):
        result = run(ctx, "flamegraph", path, "-o", ctx.path("bomb.svg"))
        one_line_error(result, "larger than its size justifies")
        expect(not os.path.exists(ctx.path("bomb.svg")), "no flame graph written")
    peak = run(ctx, "--version")[3]
    expect(peak < 200, "peak memory of any run so far: %.0f MiB (bounded by what the files justify)" % peak)
    print("ok: bombs of %d and %d bytes refused, peak memory %.0f MiB" % (os.path.getsize(bomb), os.path.getsize(dense), peak))


def impossible_times(ctx):
    cases = {
        "time-overflow": dict(time_deltas=[2**63 - 1, 10], walls=[10, 10]),
        "time-negative": dict(time_deltas=[-(2**63), 10], walls=[10, 10]),
        "weight-huge": dict(time_deltas=[10, 10], walls=[2**63, 10]),
    }
    for name, c in cases.items():
        cols = dict(time_deltas=c["time_deltas"], threads=[0, 0], stacks=[0, 0], walls=c["walls"], cpus=[0, 0],
                    flags=[0, 0], segments=[0, 0])
        path = write(ctx, name + ".swp", swpfile.simple_file(["/a.py", "f"], [(1, 0, 1, 1)], [[0]], [(1, "t")], cols))
        one_line_error(run(ctx, "analyze", path), path, "out of range")
    # A segment that ends before it starts (what imports of clocks going backwards once wrote).
    cols = dict(time_deltas=[10], threads=[0], stacks=[0], walls=[10], cpus=[0], flags=[0], segments=[1])
    path = write(ctx, "segment-backwards.swp", swpfile.simple_file(["/a.py", "f"], [(1, 0, 1, 1)], [[0]], [(1, "t")], cols,
                                                                  segments=[(1, 0, 5000, 0)], segment_ends=[(1, 1000)]))
    one_line_error(run(ctx, "analyze", path, "--segments"), "ends before it starts")
    # The largest times a file may hold analyse without overflow anywhere.
    big = 2**50
    cols = dict(time_deltas=[big // 2, big // 2], threads=[0, 0], stacks=[0, 0], walls=[big, big], cpus=[big, 0],
                flags=[0, 0], segments=[1, 1])
    path = write(ctx, "times-max.swp", swpfile.simple_file(["/a.py", "f"], [(1, 0, 1, 1)], [[0]], [(1, "t")], cols,
                                                          segments=[(1, 0, -big, 0)], segment_ends=[(1, big)]))
    for args in ([], ["--estimator", "skywalking"], ["--mode", "offcpu"], ["--segments"], ["--slowest", "1"]):
        code, _, err, _ = run(ctx, "analyze", path, *args)
        expect(code == 0, "times at the limit analyse (%s): %s" % (args, err))
    code, _, err, _ = run(ctx, "export", path, "--format", "skywalking", "-o", ctx.path("max.json"))
    expect(code == 0, "and export: %s" % err)


def long_digits(ctx):
    # std::regex recursed once per character of this name and overflowed the stack.
    name = "/usr/lib/python3." + "0" * 50000 + "/x.py"
    path = write(ctx, "digits.swp", swpfile.one_stack_file(["main", "f"], file_name=name))
    for fmt in ("text", "json", "collapsed"):
        code, out, err, _ = run(ctx, "analyze", path, "--format", fmt, stack=SMALL_STACK)
        expect(code == 0 and b"0000000000" in out, "%s: %s" % (fmt, err))
    code, _, err, _ = run(ctx, "flamegraph", path, "-o", ctx.path("digits.svg"), stack=SMALL_STACK)
    expect(code == 0, "flamegraph: %s" % err)
    print("ok: a 50,000-digit path analyses with a 1 MiB stack")


def hostile_names(ctx):
    esc = "\x1b[2J\x1b]0;pwned\x07"
    command = ("python3", "evil%s.py" % esc, "\r\nforged line", "caf\udcff")
    header = swpfile.header(command=command, hostname="h\x1b[31m\u202e", python="3.11\x1b[5m")
    path = write(ctx, "names.swp", swpfile.one_stack_file(
        ["<module>", "f%sclear" % esc, "g\nfake  100.0ms row", "h\u202etxt.py\x9b1m"],
        file_name="/app/\x1b[1A\udcfe.py", thread_name="worker\x07\x1b[K", header_msg=header,
        segments=()))
    outputs = []
    for args in ([], ["--by-thread"], ["--lines", "--min-percent", "0"], ["--color"], ["--segments"]):
        code, out, err, _ = run(ctx, "analyze", path, *args)
        expect(code == 0, "analyze %s: %s" % (args, err))
        text = out.decode("utf-8")  # valid UTF-8 throughout
        colored = "--color" in args
        for ch in text:
            if ch == "\x1b" and colored:
                continue  # swprof's own colors; names are checked below
            expect(ch >= " " or ch == "\n", "control character %r in the text of analyze %s" % (ch, args))
            expect(not "\x80" <= ch < "\xa0" and ch not in "\u202e\u2028\u2029", "%r in analyze %s" % (ch, args))
        outputs.append(text)
    text = outputs[0]
    for shown in ("f\\x1b[2J\\x1b]0;pwned\\x07clear", "g\\x0afake  100.0ms row", "h\\u202etxt.py\\u009b1m",
                  "/app/\\x1b[1A\\xfe.py", "evil\\x1b[2J", "\\x0d\\x0aforged line", "caf\\xff", "h\\x1b[31m\\u202e"):
        expect(shown in text, "%r shown as a visible escape:\n%s" % (shown, text))
    expect("fake  100.0ms row" not in [l.strip() for l in text.splitlines()], "no forged row")
    expect("worker\\x07\\x1b[K" in outputs[1], "thread names escaped")
    expect("\\x1b[2J" in outputs[3], "escaped in color mode too")
    # JSON: valid for any reader, and what was not UTF-8 kept exactly beside the text.
    code, out, err, _ = run(ctx, "analyze", path, "--format", "json")
    doc = json.loads(out)
    import base64
    expect(base64.b64decode(doc["recording"]["command_base64"]) ==
           b"python3 evil\x1b[2J\x1b]0;pwned\x07.py \r\nforged line caf\xff", "argv bytes kept in JSON")
    f = harness.find_path(doc["roots"], ["<module>", "f%sclear" % esc], (3, 11))
    expect(f and base64.b64decode(f[-1]["file_base64"]) == b"/app/\x1b[1A\xfe.py", "file bytes kept in JSON")
    # Error messages that echo a name escape it too.
    one_line_error(run(ctx, "analyze", ctx.path("missing\x1b[2J\n.swp")), "missing\\x1b[2J\\x0a.swp")


def deep_stack(ctx):
    # 60,000 frames: every report and export must walk it without recursion (1 MiB stack).
    n = 60000
    strings = ["/app/deep.py"] + ["f%d" % i for i in range(n)]
    frames = [(i + 1, 0, i + 1, i + 1) for i in range(n)]
    cols = dict(time_deltas=[10000] * 3, threads=[0] * 3, stacks=[0, 1, 0], walls=[10000] * 3, cpus=[0] * 3,
                flags=[0] * 3, segments=[1] * 3)
    path = write(ctx, "deep.swp", swpfile.simple_file(strings, frames, [list(range(n)), list(range(n - 1))],
                                                      [(1, "t")], cols, segments=[(1, 0, 0, 0)],
                                                      segment_ends=[(1, 30000)]))
    for args in (["--format", "text"], ["--format", "json"], ["--format", "json", "--flat"], ["--format", "collapsed"],
                 ["--estimator", "skywalking"], ["--show-importlib"], ["--by-greenlet"]):
        code, out, err, _ = run(ctx, "analyze", path, *args, stack=SMALL_STACK)
        expect(code == 0 and out, "analyze %s of a 60,000-frame stack: %s" % (args, err))
    flat = json.loads(run(ctx, "analyze", path, "--format", "json", "--flat", stack=SMALL_STACK)[1])
    expect(len(flat["nodes"]) == n and flat["nodes"][-1]["depth"] == n - 1, "flat JSON has every node")
    for args in (["flamegraph", path, "-o", ctx.path("deep.svg")], ["export", path, "--format", "collapsed", "-o", ctx.path("deep.folded")],
                 ["export", path, "--format", "skywalking", "-o", ctx.path("deep.json")]):
        code, _, err, _ = run(ctx, *args, stack=SMALL_STACK)
        expect(code == 0, "%s: %s" % (args[0], err))
    print("ok: a 60,000-frame stack through every report and export with a 1 MiB stack")


def full_stdout(ctx):
    path = write(ctx, "small.swp", swpfile.one_stack_file(["main", "f"]))
    with open("/dev/full", "wb") as full:
        for args in (["--format", "text"], ["--format", "json"], ["--format", "json", "--flat"],
                     ["--format", "collapsed"], ["--segments"]):
            one_line_error(run(ctx, "analyze", path, *args, stdout=full),
                           "writing to standard output failed: No space left on device")


def test(ctx):
    bombs(ctx)
    impossible_times(ctx)
    long_digits(ctx)
    hostile_names(ctx)
    deep_stack(ctx)
    full_stdout(ctx)


if __name__ == "__main__":
    harness.main(test, __doc__)
