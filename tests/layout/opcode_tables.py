"""Prints, for the interpreter running it, the opcode facts swprof needs to tell whether a function
has a backward jump (a loop): run with each CPython to (re)generate the tables in
src/python/opcodes.cpp, and by the tests to check them.

Output, one line each:  version 3.X / backward N,.. / absolute N,.. / extended_arg N /
units_per_arg 1|2 / caches N:K,.. (base opcodes with inline caches) / deopt N:B,.. (specialized
and instrumented opcodes -> base) / unknown N,.. (opcodes whose original instruction is hidden)
"""
import dis
import opcode
import sys

v = sys.version_info[:2]
opmap = getattr(dis, "_all_opmap", opcode.opmap)
print("version %d.%d" % v)
backward = sorted(n for name, n in opmap.items()
                  if n < 256 and name in ("JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
                  or (name.startswith("POP_JUMP_BACKWARD_IF_") and n < 256))
print("backward " + ",".join(map(str, backward)))
absolute = sorted(opcode.hasjabs) if v < (3, 11) else []
print("absolute " + ",".join(map(str, absolute)))
print("extended_arg %d" % opcode.opmap["EXTENDED_ARG"])
print("units_per_arg %d" % (2 if v == (3, 10) else 1))
caches = {}
if v >= (3, 11):
    entries = opcode._inline_cache_entries
    if hasattr(entries, "items"):  # a dict (3.13+), a frozendict (3.15)
        for name, count in entries.items():
            if count and name in opmap and opmap[name] < 256:
                caches[opmap[name]] = count
    else:
        for op, count in enumerate(entries):
            if count:
                caches[op] = count
print("caches " + ",".join("%d:%d" % kv for kv in sorted(caches.items())))
deopt, unknown = {}, []
if v >= (3, 11):
    for base, specialized in opcode._specializations.items():
        for name in specialized:
            if name in opmap and opmap[name] < 256:
                deopt[opmap[name]] = opmap[base]
    for name, n in opmap.items():
        if n >= 256 or not name.startswith("INSTRUMENTED_"):
            continue
        base = name[len("INSTRUMENTED_"):]
        if base in opmap and opmap[base] < 256:
            deopt[n] = opmap[base]
        else:
            unknown.append(n)  # INSTRUMENTED_LINE / INSTRUCTION: the real opcode is stored elsewhere
print("deopt " + ",".join("%d:%d" % kv for kv in sorted(deopt.items())))
print("unknown " + ",".join(map(str, sorted(unknown))))
