"""Two threads that deadlock: one takes lock A then B, the other B then A, each waiting for the
other after a barrier makes sure both hold their first lock. The main thread waits for them.

    python3 samples/deadlock.py [--ready-file PATH]
(writes PATH once both threads are stuck; runs until killed)
"""
import argparse
import threading
import time

lock_a = threading.Lock()
lock_b = threading.Lock()
both_hold_one = threading.Barrier(2)


def take_a_then_b():
    with lock_a:
        both_hold_one.wait()
        with lock_b:  # waits for take_b_then_a, forever
            pass


def take_b_then_a():
    with lock_b:
        both_hold_one.wait()
        with lock_a:  # waits for take_a_then_b, forever
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    threads = [threading.Thread(target=take_a_then_b, name="a-then-b"),
               threading.Thread(target=take_b_then_a, name="b-then-a")]
    for t in threads:
        t.start()
    while not (lock_a.locked() and lock_b.locked()):
        time.sleep(0.01)
    time.sleep(0.1)  # both are past the barrier, in their second acquire
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
