"""A function whose locals are known, waiting on an Event so they stay put: `swprof dump --locals`
shows them (tests/e2e/test_dump.py compares them with what this program prints of them).

    python3 samples/known_locals.py [--ready-file PATH]
(prints {name: repr} of the locals as JSON on one line, writes PATH, then waits until killed)
"""
import argparse
import json
import threading


class Widget:
    pass


def show(frame_locals, wanted):
    return {name: repr(frame_locals[name]) for name in wanted}


def holder(ready_file):
    nothing = None
    yes, no = True, False
    answer = 42
    negative = -7
    big = 2 ** 100
    huge = 10 ** 200
    ratio = 1.5
    third = 1 / 3
    word = "hello"
    quote = "it's"
    long_text = "x" * 100000
    data = b"\x00\x01abc"
    items = [1, 2, 3]
    table = {"a": 1, "b": 2}
    pair = (1, "two")
    members = {1, 2}
    loop = []
    loop.append(loop)  # self-referential
    widget = Widget()
    captured = "by the inner function"  # a cell variable

    def inner():
        return captured, ready_file  # ready_file: an argument that is a cell too

    done = threading.Event()
    wanted = ["nothing", "yes", "no", "answer", "negative", "big", "ratio", "third", "word", "quote", "data"]
    print(json.dumps(show(locals(), wanted)), flush=True)
    if ready_file:
        with open(ready_file, "w") as f:
            f.write("ready\n")
    done.wait()
    return inner


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    holder(args.ready_file)


if __name__ == "__main__":
    main()
