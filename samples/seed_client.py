"""Drives samples/seed_server.py: sends POST requests and prints each one's time.

    python3 samples/seed_client.py --port 8080 --count 3
    python3 samples/seed_client.py --port-file /tmp/port --count 4 --concurrency 4
    python3 samples/seed_client.py --port 8080 --count 2 --keep-alive   # one connection
"""
import argparse
import http.client
import os
import sys
import threading
import time


def wait_for_port(port_file, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(port_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            time.sleep(0.02)
    sys.exit("seed_client: no port in %s after %.0fs" % (port_file, timeout))


def post(conn, n):
    started = time.monotonic()
    conn.request("POST", "/work/%d" % n, body=b"x" * 64, headers={"Content-Type": "text/plain"})
    reply = conn.getresponse().read()
    return (time.monotonic() - started) * 1000, reply


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--port-file")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--keep-alive", action="store_true", help="all requests on one connection")
    args = parser.parse_args()
    port = args.port or wait_for_port(args.port_file)
    results = []
    lock = threading.Lock()

    def worker(indices):
        conn = None
        for n in indices:
            if conn is None or not args.keep_alive:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ms, reply = post(conn, n)
            with lock:
                results.append((n, ms))
            print("request %d: %.1f ms: %s" % (n, ms, reply.decode().strip()), flush=True)
            if not args.keep_alive:
                conn.close()

    groups = [list(range(i, args.count, args.concurrency)) for i in range(args.concurrency)]
    threads = [threading.Thread(target=worker, args=(g,)) for g in groups if g]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
