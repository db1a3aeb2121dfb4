"""Python and C calling each other in a known order, for `record --native` and its tests:

    outer_py -> chainmod.run_chain -> chain_a -> chain_b -> chain_c -> inner_py -> chainmod.spin -> spin_leaf

Most of the time is spent in spin_leaf (C). Build chainmod first (see chainmod.c); run with the
directory holding the built module on sys.path:

    python3 native_chain.py --module-dir DIR [--seconds S]

Prints "ready <pid>" once the module is imported, then loops for S seconds (forever by default).
"""
import argparse
import os
import sys
import time


def inner_py():
    chainmod.spin(5.0)


def outer_py():
    chainmod.run_chain(inner_py)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module-dir", required=True)
    parser.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args()
    sys.path.insert(0, args.module_dir)
    global chainmod
    import chainmod
    print("ready", os.getpid(), flush=True)
    end = time.monotonic() + args.seconds if args.seconds else None
    while end is None or time.monotonic() < end:
        outer_py()


if __name__ == "__main__":
    main()
