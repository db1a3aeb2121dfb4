"""Bad input gets one clear line and a non-zero exit, never a crash: a non-Python process, a pid
that does not exist, an unwritable output, a launched command that is not Python, a file that is
not a snapshot, a corrupt snapshot, malformed options. dump and top answer a pid that is gone,
not Python or not ours with record's very line."""
import os
import shutil
import subprocess
import time

import harness
from harness import expect


def one_line_error(proc, *needles):
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    expect(proc.returncode not in (0, -11, -6), "exit status %d" % proc.returncode)
    expect(len(lines) == 1 and lines[0].startswith("swprof: "), "one error line, got: %r" % proc.stderr)
    for n in needles:
        expect(n in lines[0], "%r not in %r" % (n, lines[0]))
    print("ok: %s" % lines[0])


def same_line_as_record(ctx, record, args, prefix=()):
    """dump and top say what record said (`record`, its finished process) for the same target."""
    for sub in ("dump", "top"):
        proc = subprocess.run(list(prefix) + [ctx.swprof, sub] + args, capture_output=True, text=True, timeout=30)
        expect(proc.stderr == record.stderr and proc.returncode == record.returncode,
               "%s says %r (%d), record %r (%d)" % (sub, proc.stderr, proc.returncode, record.stderr, record.returncode))
    print("ok: dump and top say the same")


def test(ctx):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.2)
        proc = ctx.run_swprof("record", "-o", ctx.path("x.swp"), "--pid", str(sleeper.pid))
        one_line_error(proc, "not a Python process", str(sleeper.pid))
        expect(not os.path.exists(ctx.path("x.swp")), "no empty file left behind")
        same_line_as_record(ctx, proc, ["--pid", str(sleeper.pid)])
    finally:
        sleeper.kill()
    proc = ctx.run_swprof("record", "-o", ctx.path("y.swp"), "--pid", "999999")
    one_line_error(proc, "no process with pid 999999")
    same_line_as_record(ctx, proc, ["--pid", "999999"])

    # An existing file is never removed or truncated by a recording that could not start.
    keep = ctx.path("keep.swp")
    open(keep, "w").write("precious")
    ctx.run_swprof("record", "-o", keep, "--pid", "999999")
    expect(open(keep).read() == "precious", "an existing output file is left untouched")

    # Permission denied: an unprivileged user attaching to a root-owned program.
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv:
        target = subprocess.Popen([ctx.python, os.path.join(harness.SAMPLES, "nested_sleeps.py"), "30"])
        try:
            time.sleep(0.3)
            proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", ctx.swprof, "record",
                                   "-o", "/tmp/swprof-perm-%d.swp" % target.pid, "--pid", str(target.pid)],
                                  capture_output=True, text=True, timeout=30)
            one_line_error(proc, "permission denied", "CAP_SYS_PTRACE", "ptrace_scope")
            same_line_as_record(ctx, proc, ["--pid", str(target.pid)],
                                prefix=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
        finally:
            target.kill()
    else:
        print("note: permission case not run (needs root and setpriv)")
    one_line_error(ctx.run_swprof("record", "-o", "/nonexistent-dir/out.swp", "--", ctx.python, "-c", "pass"),
                   "cannot write /nonexistent-dir/out.swp")
    one_line_error(ctx.run_swprof("record", "-o", ctx.path("z.swp"), "--", "true"), "true", "not a Python")
    one_line_error(ctx.run_swprof("record", "-o", ctx.path("z.swp"), "--", "/no/such/program"), "cannot run")
    one_line_error(ctx.run_swprof("record", "-o", ctx.path("z.swp"), "--interval", "50us", "--", ctx.python),
                   "at least 100us")

    not_swp = ctx.path("notes.txt")
    open(not_swp, "w").write("hello\n")
    one_line_error(ctx.run_swprof("analyze", not_swp), "not a swprof snapshot")
    one_line_error(ctx.run_swprof("analyze", ctx.path("missing.swp")), "cannot open")

    good = ctx.path("good.swp")
    ctx.record(good, [ctx.python, os.path.join(harness.SAMPLES, "nested_sleeps.py"), "3"])
    data = bytearray(open(good, "rb").read())
    for offset in (20, len(data) // 2, len(data) - 20):
        bad = bytearray(data)
        bad[offset] ^= 0x5A
        path = ctx.path("corrupt-%d.swp" % offset)
        open(path, "wb").write(bad)
        proc = ctx.run_swprof("analyze", path)
        expect(proc.returncode != -11 and proc.returncode != -6, "no crash on corruption at %d" % offset)
        if proc.returncode != 0:
            one_line_error(proc, path)

    # A crash of swprof itself (a bug: none is known) says so with its stack and dies of its signal
    # (SIGSEGV sent to it here), rather than vanishing without a word (CI once saw a recorder exit
    # with an empty stderr).
    rec = subprocess.Popen([ctx.swprof, "record", "-q", "-o", ctx.path("crash.swp"), "--", ctx.python, "-c",
                            "import time; time.sleep(5)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    rec.send_signal(11)
    _, err = rec.communicate(timeout=30)
    lines = err.splitlines()
    if "AddressSanitizer" in err:  # the sanitizer build keeps its own report (it says more)
        print("ok: the ASan build reports the crash itself")
        return
    expect(rec.returncode == -11, "dies of SIGSEGV: %d" % rec.returncode)
    expect(lines and lines[0].startswith("swprof: internal error (SIGSEGV): this is a bug in swprof") and len(lines) > 2,
           "a crash says so, with a stack: %r" % err[:300])
    print("ok: %s (%d stack lines)" % (lines[0], len(lines) - 1))


if __name__ == "__main__":
    harness.main(test, __doc__)
