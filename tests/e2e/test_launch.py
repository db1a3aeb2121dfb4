"""Launch mode: stdout/stdin pass through, swprof exits with the program's status, the file
defaults to out.swp in the current directory, and SIGTERM/SIGINT stop recording cleanly (complete
file) while the program gets the signal too."""
import os
import signal
import subprocess
import time

import harness
from harness import expect


def test(ctx):
    # Pass-through and exit status.
    script = ctx.path("talk.py")
    open(script, "w").write("import sys, time\nline = sys.stdin.readline()\ntime.sleep(0.3)\n"
                            "print('got ' + line.strip())\nsys.stderr.write('to stderr\\n')\nsys.exit(3)\n")
    proc = subprocess.run([ctx.swprof, "record", "-q", "--", ctx.python, script], input="hello\n",
                          capture_output=True, text=True, cwd=ctx.tmp, timeout=60)
    expect(proc.returncode == 3, "swprof exits with the program's status 3, got %d: %s" % (proc.returncode, proc.stderr))
    expect(proc.stdout == "got hello\n", "stdout passes through: %r" % proc.stdout)
    expect("to stderr" in proc.stderr, "stderr passes through")
    default = os.path.join(ctx.tmp, "out.swp")
    expect(os.path.exists(default), "the default output is out.swp in the current directory")
    expect("out.swp" in proc.stderr, "the summary names the file")
    doc = ctx.analyze_json(default)
    expect(not doc["recording"]["truncated"], "complete file")

    # A signal stops recording; the file is complete and the program gets the signal too.
    sample = os.path.join(harness.SAMPLES, "nested_sleeps.py")
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = ctx.path("signal-%d.swp" % sig)
        rec = subprocess.Popen([ctx.swprof, "record", "-q", "-o", out, "--", ctx.python, sample, "200"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            rec.send_signal(sig)
            _, err = rec.communicate(timeout=30)
        finally:
            harness.kill_quietly(rec)
        # The program died of the signal (SIGINT: KeyboardInterrupt, exit 1 or 130).
        expected = {signal.SIGTERM: (128 + signal.SIGTERM,), signal.SIGINT: (1, 130, 128 + signal.SIGINT)}[sig]
        expect(rec.returncode in expected, "%s: exit %d, expected one of %s: %s" % (sig.name, rec.returncode, expected, err))
        doc = ctx.analyze_json(out)
        expect(not doc["recording"]["truncated"], "%s: the file is complete" % sig.name)
        expect(doc["recording"]["samples"] > 50, "%s: samples recorded" % sig.name)
        expect(harness.find_path(doc["roots"], ["methodB", "methodD"], ctx.version), "%s: methodD found" % sig.name)
        print("ok: %s stops recording, program exit %d" % (sig.name, rec.returncode))


if __name__ == "__main__":
    harness.main(test, __doc__)
