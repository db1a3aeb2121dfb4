"""gevent greenlets parked at known points, for `swprof dump`: three workers wait on an Event
(worker_a, worker_b, worker_c), one sleeps in gevent.sleep, and the main greenlet waits in
joinall. Writes --ready-file once all are parked.

    python3 samples/parked_greenlets.py [--ready-file PATH]    (Debian: python3-gevent)
"""
import argparse

import gevent
import gevent.event

release = gevent.event.Event()


def worker_a():
    release.wait()


def worker_b():
    release.wait()


def worker_c():
    release.wait()


def sleeper():
    gevent.sleep(3600)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    greenlets = [gevent.spawn(f) for f in (worker_a, worker_b, worker_c, sleeper)]
    gevent.sleep(0.1)  # every greenlet runs up to where it parks

    def ready():
        if args.ready_file:
            with open(args.ready_file, "w") as f:
                f.write("ready\n")
    gevent.spawn(ready)
    gevent.joinall(greenlets)


if __name__ == "__main__":
    main()
