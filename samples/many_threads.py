"""N threads waiting on an Event, each a few frames deep, for swprof dump's latency bench.

    python3 samples/many_threads.py [N] [--ready-file PATH]
"""
import argparse
import threading

release = threading.Event()


def level3():
    release.wait()


def level2():
    level3()


def level1():
    level2()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("threads", type=int, nargs="?", default=100)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    threads = [threading.Thread(target=level1, name="waiter-%d" % i) for i in range(args.threads)]
    for t in threads:
        t.start()
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    release.wait()


if __name__ == "__main__":
    main()
