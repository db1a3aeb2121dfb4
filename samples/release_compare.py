"""Two releases of one request handler, for swprof diff: `python3 release_compare.py 1 N` and
`... 2 N` each handle N requests. Per request (times are sleeps, so they hold on a busy machine):

    release 1: parse 20 ms, render 30 ms, legacy_cache 20 ms      (70 ms)
    release 2: parse 20 ms, render 60 ms, search_index 10 ms      (90 ms)

so render grew by 30 ms per request, legacy_cache is gone and search_index is new.
"""
import sys
import time


def parse():
    time.sleep(0.020)


def render(release):
    time.sleep(0.030 if release == 1 else 0.060)


def legacy_cache():
    time.sleep(0.020)


def search_index():
    time.sleep(0.010)


def handle(release):
    parse()
    render(release)
    if release == 1:
        legacy_cache()
    else:
        search_index()


def main(release, requests):
    for _ in range(requests):
        handle(release)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10)
