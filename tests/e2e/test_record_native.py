"""record --native: C/C++ frames interleaved with the Python frames in the recording itself.

- chain: a C extension built here (samples/native_chain/chainmod.c, with DWARF) calls back into
  Python, which calls C again. Launched and attached to (--pid), every sample in spin_leaf holds
  exactly outer_py -> run_chain -> chain_a -> chain_b -> chain_c -> inner_py -> spin -> spin_leaf
  in call order, in the file that analyze reads; the summary says how many threads were stopped
  and for how long; an attached program runs on untraced afterwards, and a launched one's exit
  status is swprof's.
- numpy (Debian's python3-numpy): a matmul's BLAS frames under the Python line that called it.
- unstoppable: a launched program's main thread that cannot stop for a while (waiting in
  posix_spawn's vfork for a child blocked opening a FIFO): its stops time out and land later, and
  the recording runs to the program's end with its exit status (a late stop was taken for the
  program's exit, status 1, the program left running).
- --native with --entry or --tasks is refused with one line.
"""
import os
import subprocess
import sys
import time

import harness
from harness import expect
import test_native_frames as nf


def collapsed(ctx, out):
    """[(names root first, weight us)] from analyze --format collapsed."""
    text = ctx.run_swprof("analyze", "--format", "collapsed", out).stdout
    stacks = []
    for line in text.splitlines():
        path, n = line.rsplit(" ", 1)
        stacks.append(([f.split(" (")[0] for f in path.split(";")], int(n)))
    return stacks


def check_chain(what, stacks):
    wanted = list(reversed(nf.CHAIN))  # root first
    keep = set(nf.CHAIN) | nf.INLINED
    total = sum(n for _, n in stacks)
    in_spin = 0
    for names, n in stacks:
        chain = [x for x in names if x in keep and x not in nf.INLINED]
        if not chain or chain[-1] != "spin_leaf":
            continue
        expect(chain == wanted, "%s: the chain in call order:\n  got      %s\n  expected %s" % (what, chain, wanted))
        in_spin += n
    expect(in_spin >= total // 2, "%s: most of the time is in spin_leaf under the chain: %d of %d us" % (what, in_spin, total))
    print("ok: %s: %.0f %% of the time in spin_leaf, every such sample under %s"
          % (what, 100.0 * in_spin / total, " <- ".join(nf.CHAIN)))


def native_line(stderr, primed=True):
    line = next((l for l in stderr.splitlines() if l.strip().startswith("native ")), "")
    expect("threads stopped" in line and "merged with their Python frames" in line and "µs median" in line,
           "the summary tells the stops and their pause: %r\n%s" % (line, stderr))
    # Loaded before the start, not by the first sample: that held the recorder up 50-90 ms (1.5 s
    # under ASan on a busy machine) while the program ran on, its first moments not sampled.
    expect(not primed or ("unwind tables loaded in" in line and "before the start" in line),
           "the summary tells the unwind tables were loaded before the start: %r" % line)
    return line.strip()


def part_chain(ctx):
    variants, _, _ = nf.build_variants(ctx)
    module_dir = variants["dwarf"][0]
    # Launched: the program's exit status is swprof's.
    out = ctx.path("launched.swp")
    argv = [ctx.swprof, "record", "--native", "-i", "5ms", "-o", out, "--", ctx.python, nf.CHAIN_PROGRAM,
            "--module-dir", module_dir, "--seconds", "2"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    expect(proc.returncode == 0, "record --native of a launched program: %d\n%s" % (proc.returncode, proc.stderr))
    print("launched: %s" % native_line(proc.stderr))
    check_chain("launched", collapsed(ctx, out))
    # Attached: afterwards it runs on, with no tracer left.
    prog = subprocess.Popen([ctx.python, nf.CHAIN_PROGRAM, "--module-dir", module_dir], stdout=subprocess.PIPE, text=True)
    try:
        expect(prog.stdout.readline().startswith("ready"), "the chain program starts")
        out = ctx.path("attached.swp")
        proc = ctx.record(out, pid=prog.pid, options=["--native", "-i", "5ms", "-d", "2s"])
        print("attached: %s" % native_line(proc.stderr))
        check_chain("attached", collapsed(ctx, out))
        time.sleep(0.2)
        expect(prog.poll() is None, "the program runs on after record --native")
        for tid in os.listdir("/proc/%d/task" % prog.pid):
            status = open("/proc/%d/task/%s/status" % (prog.pid, tid)).read()
            tracer = [l for l in status.splitlines() if l.startswith("TracerPid:")][0].split()[1]
            state = [l for l in status.splitlines() if l.startswith("State:")][0]
            expect(tracer == "0" and "stopped" not in state, "thread %s is untraced and running: %s, %s" % (tid, tracer, state))
        print("ok: attached program runs on, every thread untraced")
    finally:
        harness.kill_quietly(prog)
        prog.wait()


def part_numpy(ctx):
    if subprocess.run([ctx.python, "-c", "import numpy"], capture_output=True).returncode != 0:
        print("SKIP: numpy is not importable in %s (Debian: apt-get install python3-numpy)" % ctx.python_name)
        sys.exit(harness.SKIP)
    path = ctx.path("matmul.py")
    with open(path, "w") as f:
        f.write(nf.NUMPY_PROGRAM)
    prog = subprocess.Popen([ctx.python, path], stdout=subprocess.PIPE, text=True)
    try:
        expect(prog.stdout.readline().startswith("ready"), "the matmul program starts")
        out = ctx.path("matmul.swp")
        proc = ctx.record(out, pid=prog.pid, options=["--native", "-i", "10ms", "-d", "2s"])
        print("numpy: %s" % native_line(proc.stderr))
    finally:
        harness.kill_quietly(prog)
        prog.wait()
    total = in_blas = 0
    for names, n in collapsed(ctx, out):
        total += n
        blas = [i for i, x in enumerate(names) if x.startswith(("dgemm", "cblas_dgemm"))]
        if not blas:
            continue
        callers = names[:blas[0]]
        python = [x for x in callers if x == "multiply"]
        expect(python, "the BLAS frames are under multiply: %s" % names)
        between = callers[callers.index("multiply") + 1:]
        expect(any("_multiarray_umath" in x for x in between), "numpy's C frames are between: %s" % between)
        in_blas += n
    expect(in_blas >= total // 2, "most of the time is in BLAS: %d of %d us" % (in_blas, total))
    print("ok: %.0f %% of the time in dgemm, under multiply, with numpy's C frames between" % (100.0 * in_blas / total))


SPAWN_WAIT = r"""
import os, subprocess, sys, time
fifo = sys.argv[1]
os.mkfifo(fifo)
# Another process opens the FIFO for writing once a stop of this thread is pending (a tracer shows
# in its status) and 0.3 s more, several of the recorder's 50 ms stop timeouts: a fixed wait held
# on a quiet machine (the recorder's start took 0.4 s beside two busy loops), not under any load.
watch = ('for i in $(seq 300); do grep -qE "^TracerPid:[[:space:]]*[1-9]" /proc/%d/status && break; sleep 0.05; done; '
         'sleep 0.3; exec 3>"$0"' % os.getpid())
writer = subprocess.Popen(["sh", "-c", watch, fifo])
started = time.monotonic()
# This thread waits in posix_spawn (vfork) until the child has run its file actions and exec'd,
# and the child's open of the FIFO blocks until the writer opens it: a wait no stop interrupts.
pid = os.posix_spawn("/bin/true", ["true"], os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 3, fifo, os.O_RDONLY, 0)])
print("spawned after %.0f ms" % ((time.monotonic() - started) * 1000), flush=True)
os.waitpid(pid, 0)
writer.wait()
end = time.monotonic() + 1.0
while time.monotonic() < end:
    sum(range(1000))
print("done", flush=True)
sys.exit(3)
"""


def part_unstoppable(ctx):
    program, out = ctx.path("spawn_wait.py"), ctx.path("spawn_wait.swp")
    with open(program, "w") as f:
        f.write(SPAWN_WAIT)
    proc = subprocess.run([ctx.swprof, "record", "--native", "-i", "5ms", "-o", out, "--", ctx.python, program,
                           ctx.path("fifo")], capture_output=True, text=True, timeout=120)
    # (Loaded before the start unless that stop timed out too.)
    line = native_line(proc.stderr, primed=False)
    print("unstoppable: %s" % line)
    # (Else the kernel let the thread stop in that wait, and this test shows nothing.)
    expect("timeout)" in line, "the main thread's stops timed out while it waited in vfork: %r" % line)
    expect(proc.returncode == 3 and "done" in proc.stdout.splitlines(),
           "the recording ran to the program's end, its exit status 3: %d, stdout %r\n%s"
           % (proc.returncode, proc.stdout, proc.stderr))
    expect("program exited" in proc.stderr, "summary: %s" % proc.stderr)
    doc = ctx.analyze_json(out)
    expect(doc["recording"]["duration_ms"] >= 1000, "recorded the program's last second too: %.0f ms"
           % doc["recording"]["duration_ms"])
    expect(doc["recording"]["stop_reason"] == "program exited" and doc["recording"]["exit_status"] == 3,
           "the file says the program exited with 3: %s %s" % (doc["recording"]["stop_reason"], doc["recording"]["exit_status"]))
    print("ok: stops that timed out and landed later did not end the recording")


def part_refused(ctx):
    for extra in (["--entry", "main"], ["--tasks"]):
        proc = subprocess.run([ctx.swprof, "record", "--native"] + extra + ["-o", ctx.path("x.swp"), "--", ctx.python, "-c", "pass"],
                              capture_output=True, text=True, timeout=60)
        lines = proc.stderr.strip().splitlines()
        expect(proc.returncode != 0 and len(lines) == 1 and "--native" in lines[0],
               "--native %s is refused with one line: %d %s" % (" ".join(extra), proc.returncode, proc.stderr))
        expect(not os.path.exists(ctx.path("x.swp")), "nothing is written")
    print("ok: --native with --entry or --tasks is refused")


def test(ctx):
    {"chain": part_chain, "numpy": part_numpy, "unstoppable": part_unstoppable, "refused": part_refused}[ctx.args.part](ctx)


if __name__ == "__main__":
    harness.main(test, __doc__, extra_args=[(("--part",), {"required": True, "choices": ["chain", "numpy", "unstoppable", "refused"]})])
