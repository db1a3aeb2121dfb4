"""A full disk (a 64 KiB tmpfs): record stops sampling at the first failed write, says "No space
left on device", prints its summary, exits non-zero, and leaves a file whose every record reads;
flamegraph, export and import replace an existing file only by a whole one and leave no partial or
temporary file behind. Needs root (mount); skipped otherwise."""
import json
import os
import re
import subprocess
import sys
import time

import harness
from harness import expect

# New function names and file names all the time: the snapshot file grows fast.
PROGRAM = r'''
import sys, threading, time
deadline = time.monotonic() + float(sys.argv[1])
def worker(k):
    n = 0
    while time.monotonic() < deadline:
        name = "generated_function_%d_%d" % (k, n)
        space = {"time": time}
        exec(compile("def %s():\n    time.sleep(0.002)\n" % name, "/generated/module_%d_%d.py" % (k, n), "exec"), space)
        space[name]()
        n += 1
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
'''


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path], capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr.strip()


def fill(directory):
    """Fills the file system with one file until it refuses; returns that file's path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return path


def check_stopped_cleanly(proc, err, started, out):
    lines = [l for l in err.splitlines() if l.strip()]
    expect(proc.returncode not in (0, -6, -11), "non-zero exit, no crash: %d" % proc.returncode)
    expect(lines and "No space left on device" in lines[-1] and lines[-1].startswith("swprof: writing "),
           "the last line says why: %r" % err)
    expect(not any("No such process" in l for l in lines), "no misleading errno: %r" % err)
    summary = [l for l in lines if l.startswith("swprof: wrote ")]
    expect(summary and "No space left on device" in summary[0], "the summary is printed, with the reason: %r" % err)
    # Every record written before the failure reads; the summary's sample count is what the file holds.
    samples = int(re.search(r", (\d+) samples,", summary[0]).group(1))
    return samples


def record_on_full_disk(ctx, disk, program):
    out = os.path.join(disk, "out.swp")
    # Attach mode: swprof must stop by itself at the failure, long before the program ends.
    target = subprocess.Popen([ctx.python, program, "60"])
    try:
        time.sleep(0.5)
        started = time.monotonic()
        proc = subprocess.run([ctx.swprof, "record", "-q", "-i", "1ms", "-o", out, "--pid", str(target.pid)],
                              capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
    finally:
        target.kill()
        target.wait()
    samples = check_stopped_cleanly(proc, proc.stderr, started, out)
    expect(took < 40, "recording stopped at the failure (%.1f s), not when the program ended (60 s)" % took)
    doc = ctx.analyze_json(out)
    expect(doc["recording"]["truncated"], "the file says it ends early")
    expect(doc["recording"]["samples"] == samples and samples > 0,
           "the file holds the %d samples the summary counts (analyze: %d)" % (samples, doc["recording"]["samples"]))
    print("ok: attach: stopped after %.1f s with %d samples in %d bytes" % (took, samples, os.path.getsize(out)))
    os.remove(out)

    # Launch mode: sampling stops at the failure; the program runs on to its end, then swprof exits.
    proc = subprocess.run([ctx.swprof, "record", "-q", "-i", "1ms", "-o", out, "--", ctx.python, program, "6"],
                          capture_output=True, text=True, timeout=60)
    samples = check_stopped_cleanly(proc, proc.stderr, None, out)
    expect("recording stopped (writing" in proc.stderr, "says the recording stopped: %s" % proc.stderr)
    doc = ctx.analyze_json(out)
    expect(doc["recording"]["samples"] == samples, "launch: the file holds what the summary says")
    print("ok: launch: %d samples kept, %s" % (samples, proc.stderr.splitlines()[-1]))
    os.remove(out)


def replace_on_full_disk(ctx, disk, swp, sw_json):
    outputs = {"graph.svg": ["flamegraph", swp, "-o"], "folded.txt": ["export", swp, "--format", "collapsed", "-o"],
               "snaps.json": ["export", sw_json[1], "--format", "skywalking", "-o"],
               "imported.swp": ["import", "--from", "skywalking", sw_json[0], "-o"]}
    for name in outputs:
        with open(os.path.join(disk, name), "w") as f:
            f.write("old content\n")
    filler = fill(disk)
    for name, args in outputs.items():
        for existing in (True, False):
            path = os.path.join(disk, name if existing else "new-" + name)
            proc = ctx.run_swprof(*args, path)
            lines = [l for l in proc.stderr.splitlines() if l.strip()]
            expect(proc.returncode == 1 and len(lines) == 1 and "No space left on device" in lines[0],
                   "%s on a full disk: one line with the reason: %r" % (args[0], proc.stderr))
            if existing:
                expect(open(path).read() == "old content\n", "%s: the existing file is untouched" % name)
            else:
                expect(not os.path.exists(path), "%s: no partial file is left" % name)
    leftovers = [n for n in os.listdir(disk) if n.startswith(".")]
    expect(not leftovers, "no temporary files left: %s" % leftovers)
    # With room again, the same commands replace the old files by whole new ones.
    os.remove(filler)
    for name, args in outputs.items():
        path = os.path.join(disk, name)
        proc = ctx.run_swprof(*args, path)
        expect(proc.returncode == 0 and open(path, "rb").read() != b"old content\n", "%s: replaced: %s" % (name, proc.stderr))
    print("ok: flamegraph, export and import replace a file whole or not at all")


def test(ctx):
    if os.geteuid() != 0:
        print("SKIP: mounting a small tmpfs needs root")
        sys.exit(harness.SKIP)
    disk = ctx.path("disk")
    ok, why = mount_tmpfs(disk, "64k")
    if not ok:
        print("SKIP: cannot mount a tmpfs here: %s" % why)
        sys.exit(harness.SKIP)
    try:
        program = ctx.path("grow.py")
        with open(program, "w") as f:
            f.write(PROGRAM)
        record_on_full_disk(ctx, disk, program)

        swp = ctx.path("small.swp")
        ctx.record(swp, [ctx.python, os.path.join(harness.SAMPLES, "nested_sleeps.py"), "1"])
        snaps = [{"taskId": "t", "traceSegmentId": "s", "time": 1700000000000 + 10 * i, "sequence": i,
                  "stack": {"codeSignatures": ["a.py.main: 1", "a.py.f: %d" % (i % 3)]}} for i in range(40)]
        sw_json = ctx.path("snaps.json")
        json.dump(snaps, open(sw_json, "w"))
        sw_swp = ctx.path("snaps.swp")
        expect(ctx.run_swprof("import", "--from", "skywalking", sw_json, "-o", sw_swp).returncode == 0, "import")
        # Room for the new outputs beside the old ones once the filler is gone.
        bigger = ctx.path("bigger")
        ok, why = mount_tmpfs(bigger, "1m")
        expect(ok, "mount a 1 MiB tmpfs: %s" % why)
        try:
            replace_on_full_disk(ctx, bigger, swp, (sw_json, sw_swp))
        finally:
            subprocess.run(["umount", bigger], capture_output=True)
    finally:
        subprocess.run(["umount", disk], capture_output=True)


if __name__ == "__main__":
    harness.main(test, __doc__)
