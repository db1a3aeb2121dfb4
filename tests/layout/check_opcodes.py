"""Runs opcode_tables.py with every installed interpreter and checks that swprof's built-in opcode
table for that version is the same text. Missing interpreters are listed as skipped."""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(here), "e2e"))
import harness  # noqa: E402

dump = sys.argv[1]
names = ["pyenv-3.8", "pyenv-3.9", "pyenv-3.10", "pyenv-3.11", "debian-3.11", "pyenv-3.12", "pyenv-3.13",
         "sid-3.14", "sid-3.15"]
checked = failures = 0
for name in names:
    python, description = harness.resolve_python(name)
    if not python:
        print("skip: %s not installed (%s)" % (name, description))
        continue
    theirs = subprocess.run([python, os.path.join(here, "opcode_tables.py")], capture_output=True, text=True).stdout
    minor = theirs.split()[1].split(".")[1]
    ours = subprocess.run([dump, "--opcodes", minor], capture_output=True, text=True).stdout
    checked += 1
    if ours != theirs:
        failures += 1
        print("FAIL: %s: the built-in opcode table differs from the interpreter's:\n--- swprof\n%s--- %s\n%s"
              % (name, ours, name, theirs))
    else:
        print("ok: %s: opcode table agrees" % name)
if not checked:
    sys.exit(77)
sys.exit(1 if failures else 0)
