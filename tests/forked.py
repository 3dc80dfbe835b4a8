"""Run a function in a fork()ed child and get its answer back (tests of fork safety)."""
from __future__ import annotations

import multiprocessing

import pytest


def run_in_forked_child(target, args, what: str):
    """Start ``target(conn, *args)`` in a fork()ed child; it sends ``(status, payload)`` on
    ``conn``.  Fails the test if the child hangs (``what`` says doing what) or exits without an
    answer; returns ``(status, payload, exitcode)``."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=target, args=(sender, *args))
    child.start()
    sender.close()
    try:
        answered = receiver.poll(60)
        child.join(timeout=10 if answered else 1)
        if child.is_alive():
            child.kill()
            child.join()
            pytest.fail(f"the forked child hung {what}")
        assert answered, f"the forked child exited ({child.exitcode}) without an answer"
        status, payload = receiver.recv()
    finally:
        receiver.close()
    return status, payload, child.exitcode
