"""Sends N requests at once to samples/gevent_server.py and prints what each handler measured:
"n wall_ms cpu_ms" per line.

    python3 samples/gevent_client.py --port-file /tmp/port --count 10
"""
import argparse
import socket
import sys
import threading
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--port-file")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    port = args.port
    deadline = time.monotonic() + 30
    while not port and time.monotonic() < deadline:
        try:
            port = int(open(args.port_file).read())
        except (OSError, ValueError):
            time.sleep(0.02)
    if not port:
        sys.exit("gevent_client: no port")
    replies = [None] * args.count
    barrier = threading.Barrier(args.count)

    def one(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        barrier.wait()
        s.sendall(b"%d\n" % n)
        replies[n] = s.makefile("rb").readline().decode().strip()
        s.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(args.count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in replies:
        print(r)


if __name__ == "__main__":
    main()
