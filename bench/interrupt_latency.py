"""How long Ctrl-C takes to stop a long fastl2 call: SIGINT to KeyboardInterrupt.

A helper thread sends SIGINT to this process 0.3 s into a call that would run for seconds to
minutes; the time from the signal to the KeyboardInterrupt raised by the call is the latency.
One case per driver path (csrc/fastl2.c, csrc/strided.c): a 1-d broadcast input (work items),
axis 0 of a broadcast matrix (groups of columns), the last axis of short rows (rows), a
contiguous 8 GB array of never-written zeros (the 1-d driver) and a gradient with ``out=``::

    uptime; python bench/interrupt_latency.py                 # the compiled backend, 1 and 2 threads
    python bench/interrupt_latency.py --backend numba --repeat 1

Prints the median and the largest latency of ``--repeat`` tries per case and thread count.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import threading
import time

import numpy as np

import fastl2


def _cases():
    broadcast_true = np.broadcast_to(np.float32(1.0), (3 * 10**10,))
    broadcast_pred = np.broadcast_to(np.float32(1.5), (3 * 10**10,))
    wide = np.broadcast_to(np.ones((1, 10**5), np.float32), (3 * 10**6, 10**5))
    short_rows = np.broadcast_to(np.ones((1, 1000), np.float32), (3 * 10**7, 1000))
    zeros = np.zeros(2 * 10**9, np.float32)  # (never written: every page is the zero page)
    n = 2 * 10**8
    grad_true = np.broadcast_to(np.float32(1.0), (n,))
    grad_pred = np.zeros(n, np.float32)
    out = np.empty(n, np.float32)
    return {
        "1-d broadcast, 3e10": lambda: fastl2.mse(broadcast_true, broadcast_pred),
        "axis 0, 3e11": lambda: fastl2.mse(wide, wide, axis=0),
        "last axis, 3e10": lambda: fastl2.mae(short_rows, short_rows, axis=-1),
        "contiguous 2e9 x 20": lambda: [fastl2.mse(zeros, zeros) for _ in range(20)],
        "gradient out=, 2e8 x 20": lambda: [fastl2.mse_grad(grad_true, grad_pred, out=out) for _ in range(20)],
    }


def latency(call, delay=0.3):
    """Seconds from SIGINT to the KeyboardInterrupt out of ``call`` (None: it finished)."""
    sent = []

    def interrupt():
        time.sleep(delay)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        call()
        caught = None
    except KeyboardInterrupt:
        caught = time.perf_counter()
    sender.join()
    return None if caught is None else caught - sent[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cython", choices=fastl2.available_backends())
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeat", type=int, default=5, help="tries per case (default 5)")
    args = parser.parse_args(argv)
    fastl2.set_backend(args.backend)
    print(f"backend {args.backend}; load average {os.getloadavg()[0]:.2f}; "
          f"SIGINT 0.3 s into the call; latency median / max of {args.repeat}")
    for threads in [int(t) for t in args.threads.split(",")]:
        fastl2.set_num_threads(threads)
        for name, call in _cases().items():
            times = [latency(call) for _ in range(args.repeat)]
            if None in times:
                print(f"  {threads} thread(s)  {name:24s} finished before it was stopped")
                continue
            print(f"  {threads} thread(s)  {name:24s} {statistics.median(times) * 1e3:8.1f} ms"
                  f"  max {max(times) * 1e3:8.1f} ms", flush=True)


if __name__ == "__main__":
    main()
