"""Native frames merged with Python frames, from outside (tests/tools/native_stacks.cpp drives
src/target/native_*.cpp, symbols.cpp and src/python/native_merge.cpp), against real programs:

--part chain: a C extension built here from samples/native_chain/chainmod.c calls back into
  Python, which calls C again: outer_py -> run_chain -> chain_a -> chain_b -> chain_c -> inner_py ->
  spin -> spin_leaf. Every sample taken in spin_leaf shows exactly that chain, interleaved in call
  order, with the extension built four ways: with DWARF (source lines; spin_step and
  thread_seconds, inlined into spin_leaf, are named as inlined calls), stripped (static functions named `file+0x...`, the offset their address in
  the unstripped build), stripped with a .gnu_debugdata mini debuginfo (names), and stripped with
  its debug file in a separate directory found by build-id (names, lines, inlined calls).
--part places: the same chain with the extension where the host cannot open it by name: at a
  path that exists only in the target's mount namespace, and deleted after it was loaded.
--part numpy: numpy's matmul (Debian's python3-numpy) shows the BLAS frames under the Python line
  that called it, with numpy's own C frames between.
--part faults: a thread that another tracer holds keeps its Python frames and counts an error
  while the other thread is merged; the tool killed while it holds a thread stopped (SIGINT and
  SIGTERM handled after the sample, SIGINT with a handler that releases and exits at once,
  SIGKILL) leaves every thread of the target running and untraced.
"""
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import harness
from harness import expect

CHAIN_DIR = os.path.join(harness.SAMPLES, "native_chain")
CHAIN_PROGRAM = os.path.join(CHAIN_DIR, "native_chain.py")
# Innermost first, as the merged stack shows them: the extension's C functions and the program's
# Python functions (libpython's and libc's frames between them are not part of the contract).
CHAIN = ["spin_leaf", "spin", "inner_py", "chain_c", "chain_b", "chain_a", "run_chain", "outer_py", "main", "<module>"]
# static inline helpers of spin_leaf: named as inlined calls where DWARF says so, else not seen.
INLINED = {"spin_step", "thread_seconds"}


def run_tool(ctx, pid, *options, timeout=120):
    proc = subprocess.run([ctx.args.tool, "--pid", str(pid)] + list(options), capture_output=True, text=True,
                          timeout=timeout)
    expect(proc.returncode == 0, "native_stacks exited %d: %s" % (proc.returncode, proc.stderr))
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = next(r for r in records if r["type"] == "summary")
    print("tool: %s" % json.dumps({k: summary[k] for k in ("samples", "merged", "native_only", "mismatch", "walk_errors",
                                                          "batch_errors", "errors", "pause_p50_us", "pause_p99_us",
                                                          "unwind_p50_us")}))
    return [r for r in records if r["type"] == "stack"], summary


def sysconfig_value(ctx, expression):
    return subprocess.run([ctx.python, "-c", "import sysconfig; print(%s)" % expression], capture_output=True, text=True,
                          timeout=60).stdout.strip()


def include_dirs(ctx):
    """Python.h for this interpreter: its own include directory (pyenv; Debian's python3.X-dev),
    else the headers tests/layout/fetch-sid-headers.sh unpacked for a sid build."""
    own = sysconfig_value(ctx, "sysconfig.get_paths()['include']")
    if os.path.exists(os.path.join(own, "Python.h")):
        return [own]
    version = "%d.%d" % ctx.version
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    fetched = os.path.join(cache, "swprof", "headers-" + version, "usr", "include")
    if os.path.exists(os.path.join(fetched, "python" + version, "Python.h")):
        return [os.path.join(fetched, "python" + version), fetched]
    print("SKIP: no Python.h for %s (Debian: apt-get install python%s-dev; sid builds: "
          "tests/layout/fetch-sid-headers.sh %s)" % (ctx.python_name, version, version))
    sys.exit(harness.SKIP)


def build_variants(ctx):
    """{variant: (module directory, tool options)} and the functions' addresses in the build."""
    suffix = sysconfig_value(ctx, "sysconfig.get_config_var('EXT_SUFFIX')")
    debug_dir = ctx.path("debug")
    built = {}
    for variant in ("dwarf", "stripped", "minidebuginfo", "buildid"):
        d = ctx.path(variant)
        os.makedirs(d)
        built[variant] = (d, os.path.join(d, "chainmod" + suffix))
    full = built["dwarf"][1]
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-g", "-Wl,--build-id", "-o", full, os.path.join(CHAIN_DIR, "chainmod.c")]
    cmd += ["-I" + d for d in include_dirs(ctx)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    expect(build.returncode == 0, "chainmod builds: %s" % build.stderr)
    nm = subprocess.run(["nm", "--defined-only", full], capture_output=True, text=True, check=True).stdout
    addresses = {f[2]: int(f[0], 16) for f in (l.split() for l in nm.splitlines()) if len(f) == 3 and f[1] in "tT"}

    def run(*argv):
        subprocess.run(list(argv), check=True, capture_output=True)

    for variant in ("stripped", "minidebuginfo", "buildid"):
        shutil.copy(full, built[variant][1])
        run("strip", "--strip-all", built[variant][1])
    # Mini debuginfo, as Fedora's find-debuginfo makes it: the function symbols that .dynsym lacks,
    # in an xz-compressed ELF in the .gnu_debugdata section.
    mini = ctx.path("mini.debug")
    keep = ctx.path("keep_symbols")
    with open(keep, "w") as f:
        f.write("\n".join(sorted(n for n in addresses if n != "PyInit_chainmod")) + "\n")
    run("objcopy", "--only-keep-debug", full, mini + ".full")
    run("objcopy", "-S", "--remove-section", ".comment", "--keep-symbols=" + keep, mini + ".full", mini)
    run("xz", "-f", mini)
    run("objcopy", "--add-section", ".gnu_debugdata=" + mini + ".xz", built["minidebuginfo"][1])
    # The debug file where a debuginfo package would put it, in a directory of our own.
    build_id = subprocess.run(["readelf", "-n", full], capture_output=True, text=True, check=True).stdout
    build_id = build_id.split("Build ID:")[1].split()[0]
    os.makedirs(os.path.join(debug_dir, ".build-id", build_id[:2]))
    run("objcopy", "--only-keep-debug", full, os.path.join(debug_dir, ".build-id", build_id[:2], build_id[2:] + ".debug"))
    options = {"dwarf": [], "stripped": [], "minidebuginfo": [], "buildid": ["--debug-dir", debug_dir]}
    return {v: (built[v][0], options[v]) for v in built}, addresses, os.path.basename(full)


def chain_of(frames, module_file, names_by_address):
    """The merged stack reduced to the extension's frames and the program's Python frames, as
    (name, frame) pairs; unnamed extension frames are named back from their address."""
    out = []
    for f in frames:
        if f["kind"] == "py":
            if f["file"] == CHAIN_PROGRAM:
                out.append((f["name"], f))
        elif os.path.basename(f["module"]) == module_file:
            name = f["name"]
            if not f["named"]:
                expect(name.startswith(module_file + "+0x"), "an unnamed frame is file+offset: %s" % name)
                name = names_by_address.get(int(name.split("+")[-1], 16), name)
            out.append((name, f))
    return out


def sample_chain(ctx, argv, options, after_start=None):
    prog = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        expect(prog.stdout.readline().startswith("ready"), "the chain program starts")
        if after_start:
            after_start(prog.pid)
        return run_tool(ctx, prog.pid, "--samples", "60", "--interval-ms", "5", *options)
    finally:
        harness.kill_quietly(prog)
        prog.wait()


def check_chain(variant, stacks, summary, module_file, names_by_address):
    """Every sample in spin_leaf shows the chain; the extension's frames named as the variant allows."""
    in_spin = 0
    inlined_seen = {}  # inlined call -> samples innermost in it
    for s in stacks:
        # On a busy machine a thread may wait for a CPU past the stop's timeout: counted, kept. A
        # stop can also land while the interpreter links a frame: its Python stack does not read
        # (a walk error) and the sample is native-only. Both count among the few that do not merge.
        expect(s["result"] in ("merged", "mismatch", "error:timeout", "native-only"), "%s: the thread is unwound: %s (frames %s)"
               % (variant, s["result"], [f["name"] for f in s["frames"]][:12]))
        if s["result"] != "merged":
            continue
        chain = chain_of(s["frames"], module_file, names_by_address)
        names = [n for n, _ in chain]
        if not names:
            continue
        if names[0] in INLINED:
            # Inlined into spin_leaf: named as such only where DWARF says so.
            expect(variant in ("dwarf", "buildid") and chain[0][1]["inlined"] and names[1] == "spin_leaf",
                   "%s: %s appears only as a call inlined into spin_leaf, from DWARF: %s" % (variant, names[0], names))
            inlined_seen[names[0]] = inlined_seen.get(names[0], 0) + 1
            names = names[1:]
        if names[0] != "spin_leaf":
            continue  # between two spins
        in_spin += 1
        expect(names == CHAIN, "%s: the chain in call order:\n  got      %s\n  expected %s" % (variant, names, CHAIN))
        for name, f in chain:
            if f["kind"] != "c":
                continue
            expect(f["named"] == (variant != "stripped"), "%s: %s named from the file: %s" % (variant, name, f))
            if variant in ("dwarf", "buildid"):
                expect(f["source"].endswith("chainmod.c") and f["line"] > 0, "%s: %s has its source line" % (variant, name))
    merged = summary["merged"]
    expect(summary["native_only"] <= summary["walk_errors"] + summary["batch_errors"],
           "%s: native-only only where the Python stack did not read: %s" % (variant, summary))
    expect(summary["mismatch"] + summary["errors"].get("timeout", 0) + summary["native_only"] <= max(2, summary["samples"] // 10),
           "%s: few stacks do not merge: %s" % (variant, summary))
    expect(in_spin >= merged // 2, "%s: most samples are in spin_leaf: %d of %d" % (variant, in_spin, merged))
    if variant == "dwarf":
        # Either inlined call will do: a stop is delivered on a return to user mode, and the loop
        # returns from a clock_gettime system call in thread_seconds every 20000 steps; on a busy
        # machine (stops late, after a preemption) all 60 once landed there, none in spin_step.
        expect(inlined_seen, "dwarf: spin_step or thread_seconds, inlined into spin_leaf, is seen")
        print("ok: dwarf: samples innermost in inlined calls: %s" % inlined_seen)
    print("ok: %s: %d samples in spin_leaf show the chain %s" % (variant, in_spin, " <- ".join(CHAIN)))


def part_chain(ctx):
    variants, addresses, module_file = build_variants(ctx)
    names_by_address = {a: n for n, a in addresses.items()}
    for variant, (module_dir, options) in variants.items():
        stacks, summary = sample_chain(ctx, [ctx.python, CHAIN_PROGRAM, "--module-dir", module_dir], options)
        check_chain(variant, stacks, summary, module_file, names_by_address)


def part_places(ctx):
    """The extension where only the target can open it by name: inside a mount namespace, at a
    path the host does not have (read through /proc/PID/root), and deleted once loaded (read
    through /proc/PID/map_files)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("SKIP: mount namespaces need root and unshare")
        sys.exit(harness.SKIP)
    variants, addresses, module_file = build_variants(ctx)
    names_by_address = {a: n for n, a in addresses.items()}
    module_dir = variants["dwarf"][0]
    expect(not os.path.exists("/opt/hidden-native"), "/opt/hidden-native must not exist on the host")
    root = ctx.path("root")
    os.makedirs(root)
    script = ('mount --make-rprivate / && mount --rbind / "$1" && mount -t tmpfs none "$1/opt" && '
              'mkdir "$1/opt/hidden-native" && mount --bind "$2" "$1/opt/hidden-native" && '
              'exec chroot "$1" "$3" "$4" --module-dir /opt/hidden-native')

    def hidden(pid):
        expect("/opt/hidden-native/" + module_file in open("/proc/%d/maps" % pid).read(),
               "the process maps the extension at a path only it can see")

    stacks, summary = sample_chain(ctx, ["unshare", "--mount", "sh", "-c", script, "sh", root, module_dir, ctx.python,
                                         CHAIN_PROGRAM], [], hidden)
    check_chain("dwarf", stacks, summary, module_file, names_by_address)
    print("ok: in a mount namespace, at /opt/hidden-native")

    deleted_dir = ctx.path("deleted")
    shutil.copytree(module_dir, deleted_dir)

    def delete(pid):
        os.unlink(os.path.join(deleted_dir, module_file))
        expect("(deleted)" in open("/proc/%d/maps" % pid).read(), "the extension is mapped deleted")

    stacks, summary = sample_chain(ctx, [ctx.python, CHAIN_PROGRAM, "--module-dir", deleted_dir], [], delete)
    check_chain("dwarf", stacks, summary, module_file, names_by_address)
    print("ok: deleted once loaded")


NUMPY_PROGRAM = """
import os, sys
import numpy as np
a = np.random.rand(500, 500)
def multiply():
    return a @ a  # the BLAS call
print("ready", os.getpid(), flush=True)
while True:
    multiply()
"""


def part_numpy(ctx):
    has = subprocess.run([ctx.python, "-c", "import numpy"], capture_output=True)
    if has.returncode != 0:
        print("SKIP: numpy is not importable in %s (Debian: apt-get install python3-numpy)" % ctx.python_name)
        sys.exit(harness.SKIP)
    path = ctx.path("matmul.py")
    with open(path, "w") as f:
        f.write(NUMPY_PROGRAM)
    line = harness.line_of(path, "# the BLAS call")
    prog = subprocess.Popen([ctx.python, path], stdout=subprocess.PIPE, text=True)
    try:
        expect(prog.stdout.readline().startswith("ready"), "the matmul program starts")
        stacks, summary = run_tool(ctx, prog.pid, "--samples", "60", "--interval-ms", "10")
    finally:
        harness.kill_quietly(prog)
        prog.wait()
    in_blas = 0
    for s in stacks:
        if s["result"] != "merged":
            continue
        frames = s["frames"]
        blas = [i for i, f in enumerate(frames) if f["kind"] == "c" and "blas" in os.path.basename(f["module"])]
        if not blas:
            continue
        in_blas += 1
        outward = frames[blas[-1] + 1:]
        caller = next(f for f in outward if f["kind"] == "py")
        expect((caller["name"], caller["file"], caller["line"]) == ("multiply", path, line),
               "the BLAS frames are under the Python line that called them: %s" % caller)
        between = outward[:outward.index(caller)]
        expect(any("_multiarray_umath" in os.path.basename(f["module"]) for f in between),
               "numpy's C frames are between: %s" % [f["name"] for f in between])
        names = [f["name"] for f in frames[:blas[-1] + 1]]
        expect(any(n.startswith(("dgemm", "cblas_dgemm")) for n in names), "dgemm is named: %s" % names)
    expect(in_blas >= summary["merged"] // 2, "most samples are in BLAS: %d of %d" % (in_blas, summary["merged"]))
    print("ok: %d of %d samples in BLAS, under multiply (line %d)" % (in_blas, summary["samples"], line))


FAULTS_PROGRAM = """
import os, sys, threading, time
progress = [0]
held = []
def held_thread():
    held.append(threading.get_native_id())
    while True:
        time.sleep(0.001)
def spinner():
    while True:
        for i in range(10000):
            pass
        progress[0] += 1
threading.Thread(target=held_thread, daemon=True).start()
threading.Thread(target=spinner, daemon=True).start()
while not held:
    time.sleep(0.001)
print("ready", os.getpid(), held[0], flush=True)
while True:
    time.sleep(0.05)
    with open(sys.argv[1] + ".new", "w") as f:
        f.write(str(progress[0]))
    os.replace(sys.argv[1] + ".new", sys.argv[1])
"""

PTRACE_SEIZE = 0x4206


def thread_states(pid):
    """{tid: (state letter, TracerPid)} for every thread of the process."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            status = open("/proc/%d/task/%s/status" % (pid, tid)).read()
        except OSError:
            continue
        fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
        out[int(tid)] = (fields["State"].split()[0], int(fields["TracerPid"]))
    return out


def running_untraced(pid, progress_file, what):
    """Every thread is untraced and not stopped, and the program makes progress."""
    deadline = time.monotonic() + 5
    while True:
        states = thread_states(pid)
        bad = {t: s for t, s in states.items() if s[1] != 0 or s[0] in "tT"}
        if not bad:
            break
        expect(time.monotonic() < deadline, "%s: threads still traced or stopped: %s" % (what, bad))
        time.sleep(0.05)
    # Progress within 5 s: a program left stopped or stuck makes none; one that a busy machine
    # holds up makes it late (CI once saw none in the first 0.5 s, the threads neither traced nor
    # stopped; said below when it happens).
    before, waited = int(open(progress_file).read() or 0), 0.0
    while True:
        time.sleep(0.1)
        waited += 0.1
        after = int(open(progress_file).read() or 0)
        if after > before:
            break
        expect(waited < 5, "%s: the program runs on (%d -> %d in %.1f s)" % (what, before, after, waited))
    if waited > 0.5:
        print("note: %s: the program made progress only after %.1f s" % (what, waited))


def part_faults(ctx):
    path, progress = ctx.path("faults.py"), ctx.path("progress")
    with open(path, "w") as f:
        f.write(FAULTS_PROGRAM)
    prog = subprocess.Popen([ctx.python, path, progress], stdout=subprocess.PIPE, text=True)
    holder = None
    try:
        first = prog.stdout.readline().split()  # "ready PID HELD_TID"
        expect(first[:1] == ["ready"], "the program starts: %s" % first)
        held = int(first[2])
        harness.wait_for_file(progress)
        # Another tracer holds one thread (seized, left running): it cannot be stopped by us.
        holder = subprocess.Popen([sys.executable, "-c", "import ctypes, sys, time\n"
                                   "libc = ctypes.CDLL(None, use_errno=True)\n"
                                   "ok = libc.ptrace(%d, %d, None, None) == 0\n"
                                   "print('seized' if ok else 'failed', flush=True)\n"
                                   "time.sleep(600)\n" % (PTRACE_SEIZE, held)], stdout=subprocess.PIPE, text=True)
        expect(holder.stdout.readline().strip() == "seized", "a helper seizes one thread")
        stacks, summary = run_tool(ctx, prog.pid, "--samples", "30", "--interval-ms", "10")
        by_tid = {}
        for s in stacks:
            by_tid.setdefault(s["tid"], []).append(s)
        expect(held in by_tid, "the held thread is sampled")
        for s in by_tid[held]:
            expect(s["result"] == "error:permission", "the held thread cannot be stopped: %s" % s["result"])
            names = [f["name"] for f in s["frames"]]
            expect(names and names[0] == "held_thread" and all(f["kind"] == "py" for f in s["frames"]),
                   "it keeps its Python frames: %s" % names)
        expect(summary["errors"].get("permission", 0) == len(by_tid[held]), "each is counted: %s" % summary["errors"])
        others = [s for t, s_list in by_tid.items() if t != held for s in s_list]
        expect(others and sum(s["result"] == "merged" for s in others) >= len(others) * 0.9,
               "the other threads are merged: %s" % [s["result"] for s in others][:10])
        print("ok: the held thread keeps its Python frames (%d samples, %d errors counted)"
              % (len(by_tid[held]), summary["errors"]["permission"]))
        harness.kill_quietly(holder)
        holder.wait()
        holder = None
        running_untraced(prog.pid, progress, "after the helper let go")

        # Killed while holding a thread stopped: --hold-ms 30 keeps one stopped nearly all the time.
        for sig, extra in ((signal.SIGINT, []), (signal.SIGTERM, []), (signal.SIGINT, ["--exit-in-handler"]),
                           (signal.SIGTERM, ["--exit-in-handler"]), (signal.SIGKILL, [])):
            caught_stopped = 0
            for attempt in range(3):
                tool = subprocess.Popen([ctx.args.tool, "--pid", str(prog.pid), "--duration", "30", "--interval-ms", "1",
                                         "--hold-ms", "30", "--quiet"] + extra, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                time.sleep(0.4 + random.random() * 0.3)
                stopped_now = [t for t, s in thread_states(prog.pid).items() if s[0] == "t"]
                tool.send_signal(sig)
                tool.communicate(timeout=30)
                what = "%s%s (attempt %d, %d thread(s) stopped when it was sent)" % (
                    signal.Signals(sig).name, " " + extra[0] if extra else "", attempt + 1, len(stopped_now))
                running_untraced(prog.pid, progress, what)
                caught_stopped += bool(stopped_now)
            expect(caught_stopped > 0, "%s reached the tool while it held a thread stopped" % signal.Signals(sig).name)
            print("ok: %s%s: the program runs on, untraced" % (signal.Signals(sig).name, " " + extra[0] if extra else ""))
    finally:
        for p in (holder, prog):
            if p is not None:
                harness.kill_quietly(p)
                p.wait()


def test(ctx):
    {"chain": part_chain, "places": part_places, "numpy": part_numpy, "faults": part_faults}[ctx.args.part](ctx)


if __name__ == "__main__":
    harness.main(test, __doc__, extra_args=[(("--tool",), {"required": True}),
                                            (("--part",), {"required": True, "choices": ["chain", "places", "numpy", "faults"]})])
