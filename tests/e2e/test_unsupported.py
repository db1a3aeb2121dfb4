"""CPython 2.7, 3.6 and 3.7 are refused with "unsupported Python version X.Y" and a non-zero exit,
whether launched or attached; a launched one is not left running."""
import glob
import os
import subprocess
import sys
import time

import harness
from harness import expect

VERSIONS = ["2.7", "3.6", "3.7"]


def find(version):
    found = sorted(glob.glob(os.path.join(harness.pyenv_root(), "versions", version + ".*", "bin", "python" + version)))
    return found[-1] if found else None


def main():
    swprof = sys.argv[sys.argv.index("--swprof") + 1]
    ran = 0
    for v in VERSIONS:
        python = find(v)
        if not python:
            print("SKIP %s: not installed (pyenv install %s)" % (v, v))
            continue
        ran += 1
        launch = subprocess.run([swprof, "record", "-o", "/tmp/swprof-unsupported.swp", "--", python, "-c",
                                 "import time; time.sleep(30)"], capture_output=True, text=True, timeout=60)
        expect(launch.returncode != 0 and "unsupported Python version %s" % v in launch.stderr,
               "launch %s: exit %d, %r" % (v, launch.returncode, launch.stderr))
        expect(not subprocess.run(["pgrep", "-f", "^%s -c import time; time.sleep\\(30\\)" % python]).returncode == 0,
               "the refused program was stopped")
        target = subprocess.Popen([python, "-c", "import time; time.sleep(30)"])
        try:
            time.sleep(0.5)
            attach = subprocess.run([swprof, "record", "-o", "/tmp/swprof-unsupported.swp", "--pid", str(target.pid)],
                                    capture_output=True, text=True, timeout=60)
            expect(attach.returncode != 0 and "unsupported Python version %s" % v in attach.stderr,
                   "attach %s: exit %d, %r" % (v, attach.returncode, attach.stderr))
            expect(target.poll() is None, "an attached program is left alone")
        finally:
            target.kill()
        print("ok: %s: %s" % (v, attach.stderr.strip()))
    if not ran:
        sys.exit(harness.SKIP)
    print("PASS")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
