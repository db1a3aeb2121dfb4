"""Threads that wait, each on one known thing, for off-CPU reasons and their tests:

    recv_client   recv on a TCP connection to --connect PORT (a client: the peer is that port)
    poll_client   the same with a timeout (CPython waits in poll() first)
    recv_server   recv on a connection accepted on its own listener (printed: the peer connects)
    accept_tcp    accept on a TCP listener nobody connects to
    accept_unix   accept on a unix socket listener at --unix-path
    lock          a threading.Lock that is never released (futex)
    sleep         time.sleep
    pipe          os.read on a pipe nobody writes to
    select        select.select on another such pipe
    epoll3        a selectors.EpollSelector watching three connections to --connect PORT
    asyncio       an idle asyncio event loop
    spinner       never waits: always running or waiting for a CPU
    alternate     40 ms in time.sleep, then 40 ms in select.select on a third pipe, and again

Prints "listening PORT" (recv_server's listener: connect to it once), then, when every thread
waits, one JSON line {"role": native thread id, ...} and sleeps until killed.

    python3 samples/offcpu_waits.py --connect PORT --unix-path /tmp/x.sock
"""
import argparse
import asyncio
import json
import os
import select
import selectors
import socket
import sys
import threading
import time

roles = {}
ready = threading.Semaphore(0)


def role(name):
    roles[name] = threading.get_native_id()
    ready.release()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", type=int, required=True)
    parser.add_argument("--unix-path", required=True)
    args = parser.parse_args()
    lock = threading.Lock()
    lock.acquire()
    pipe_r, _pipe_w = os.pipe()
    select_r, _select_w = os.pipe()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    idle_listener = socket.socket()
    idle_listener.bind(("127.0.0.1", 0))
    idle_listener.listen()
    unix_listener = socket.socket(socket.AF_UNIX)
    unix_listener.bind(args.unix_path)
    unix_listener.listen()

    def recv_client():
        conn = socket.create_connection(("127.0.0.1", args.connect))
        role("recv_client")
        conn.recv(1)

    def poll_client():
        conn = socket.create_connection(("127.0.0.1", args.connect))
        conn.settimeout(1000)
        role("poll_client")
        conn.recv(1)

    def recv_server():
        conn, _ = server.accept()
        role("recv_server")
        conn.recv(1)

    def accept_tcp():
        role("accept_tcp")
        idle_listener.accept()

    def accept_unix():
        role("accept_unix")
        unix_listener.accept()

    def lock_waiter():
        role("lock")
        lock.acquire()

    def sleeper():
        role("sleep")
        time.sleep(100000)

    def pipe_reader():
        role("pipe")
        os.read(pipe_r, 1)

    def selecter():
        role("select")
        select.select([select_r], [], [])

    def epoll3():
        sel = selectors.EpollSelector()
        conns = [socket.create_connection(("127.0.0.1", args.connect)) for _ in range(3)]
        for c in conns:
            sel.register(c, selectors.EVENT_READ)
        role("epoll3")
        sel.select()

    def idle_loop():
        async def idle():
            role("asyncio")
            await asyncio.sleep(100000)
        asyncio.run(idle())

    def spinner():
        role("spinner")
        while True:
            pass

    alternate_r, _alternate_w = os.pipe()

    def alternate():
        role("alternate")
        while True:
            time.sleep(0.04)
            select.select([alternate_r], [], [], 0.04)

    threads = [recv_client, poll_client, recv_server, accept_tcp, accept_unix, lock_waiter, sleeper, pipe_reader,
               selecter, epoll3, idle_loop, spinner, alternate]
    for f in threads:
        threading.Thread(target=f, daemon=True).start()
    print("listening", server.getsockname()[1], flush=True)
    for _ in threads:
        ready.acquire()
    time.sleep(0.3)  # each thread goes from its role() call into its wait
    print(json.dumps(roles), flush=True)
    while True:
        time.sleep(1000)


if __name__ == "__main__":
    main()
