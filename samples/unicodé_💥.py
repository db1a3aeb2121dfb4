"""A module whose file name and function name are not ASCII (used by known_stacks.py)."""
import time


def функция(seconds):
    time.sleep(seconds)  # @leaf unicode
