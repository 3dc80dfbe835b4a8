"""fastl2.torch.mse_loss against torch.nn.functional.mse_loss: forward, and forward + backward.

For each dtype (float32, bfloat16, float16) and size (10³..10⁷ elements; 10⁸ with --huge), eager
and under torch.compile, times

* fwd:     the loss of an input that does not require grad;
* fwd+bwd: the loss of an input that requires grad, then ``loss.backward()`` (the input's
           ``.grad`` is dropped each time, so each call makes a fresh gradient, as a training
           step does);

and prints the medians (``fastl2._bench.timing.time_call``) and the ratios torch / fastl2 (above
1: fastl2 is faster). The calls of the two libraries alternate in rounds (--rounds), so that a
busy machine slows both alike; the median over the rounds is printed.

Then, with --threads, how fastl2's and PyTorch's threads coexist: PyTorch work on
``torch.get_num_threads()`` threads (a 256x256 matrix product) followed by a loss step (forward
and backward), timed together and apart, for each pair of thread counts, with fastl2.torch's
loss and with PyTorch's own. ``extra`` is together - (work + step) apart, what the two calls cost
each other (caches, allocator, thread wake-ups); ``fastl2 waits`` is fastl2's extra minus
PyTorch's own loss's extra: what fastl2's threads cost beyond any loss (about 0: nothing waits).

    python bench/torch_loss.py [--sizes 1e3 1e4 ...] [--dtypes float32 ...] [--huge]
                               [--modes eager compile] [--backend inductor] [--num-threads N] [--threads]
                               [--budget 0.2] [--rounds 3] [--json FILE]
"""
import argparse
import json
import os
import platform
import statistics

import torch
import torch.nn.functional as F

import fastl2
import fastl2.torch
from fastl2._bench.timing import time_call

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_mse(a, b):
    return F.mse_loss(a, b)


def fastl2_mse(a, b):
    return fastl2.torch.mse_loss(a, b)


# Two functions of their own: torch.compile keeps one cache (and one recompile count) per code
# object, here one per library (recompiled per dtype and autograd mode).
LIBRARIES = {"torch": torch_mse, "fastl2": fastl2_mse}


def _calls(loss_fn, x, target, x_grad):
    """fwd and fwd+bwd calls of ``loss_fn`` (eager, or a compiled function)."""

    def forward():
        return loss_fn(x, target)

    def forward_backward():
        loss_fn(x_grad, target).backward()
        x_grad.grad = None

    return {"fwd": forward, "fwd+bwd": forward_backward}


def time_losses(sizes, dtypes, modes, backend, budget, rounds, report):
    # One compiled function per library, with dynamic shapes: compiled once per dtype and
    # autograd mode, not once per size (and never past Dynamo's recompile limit).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    compiled = {library: torch.compile(loss_fn, backend=backend, dynamic=True, fullgraph=True)
                for library, loss_fn in LIBRARIES.items()} if "compile" in modes else {}
    rows = []
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        for n in sizes:
            generator = torch.Generator().manual_seed(n)
            x = torch.randn(n, generator=generator).to(dtype)
            target = torch.randn(n, generator=generator).to(dtype)
            x_grad = x.clone().requires_grad_()
            for mode in modes:
                calls = {}
                for library, loss_fn in LIBRARIES.items():
                    fn = loss_fn if mode == "eager" else compiled[library]
                    calls[library] = _calls(fn, x, target, x_grad)
                    for call in calls[library].values():  # compile, touch the buffers
                        call()
                for op in ("fwd", "fwd+bwd"):
                    medians = {library: [] for library in LIBRARIES}
                    for _ in range(rounds):
                        for library in LIBRARIES:
                            medians[library].append(time_call(calls[library][op], budget=budget).seconds)
                    row = {"dtype": dtype_name, "n": n, "mode": mode, "op": op,
                           **{library: statistics.median(times) for library, times in medians.items()}}
                    row["ratio"] = row["torch"] / row["fastl2"]
                    rows.append(row)
                    report(row)
    return rows


def _print_row(row):
    print(f"{row['dtype']:>9} {row['n']:>10.0e} {row['mode']:>7} {row['op']:>8} "
          f"{row['torch'] * 1e6:>12.1f} {row['fastl2'] * 1e6:>12.1f} {row['ratio']:>7.2f}", flush=True)


def time_threads(n, budget, rounds):
    """PyTorch work then a loss step (fastl2.torch's, or PyTorch's own for comparison), together
    and apart, for each pair of thread counts."""
    cores = os.cpu_count() or 1
    counts = sorted({1, cores})
    a = torch.randn(256, 256)
    x = torch.randn(n, requires_grad=True)
    target = torch.randn(n)

    def torch_work():
        return a @ a

    def step(loss_fn):
        def call():
            loss_fn(x, target).backward()
            x.grad = None
        return call

    steps = {"fastl2": step(fastl2.torch.mse_loss), "torch": step(F.mse_loss)}
    calls = {"work": torch_work, **steps}
    for name, call in steps.items():
        calls[f"work+{name}"] = (lambda c: lambda: (torch_work(), c()))(call)
    torch_threads, fastl2_threads = torch.get_num_threads(), fastl2.get_num_threads()
    rows = []
    try:
        for tt in counts:
            for ft in counts:
                torch.set_num_threads(tt)
                fastl2.set_num_threads(ft)
                for call in calls.values():
                    call()
                times = {name: [] for name in calls}
                for _ in range(rounds):
                    for name, call in calls.items():
                        times[name].append(time_call(call, budget=budget).seconds)
                row = {"torch_threads": tt, "fastl2_threads": ft, **{k: statistics.median(v) for k, v in times.items()}}
                for name in steps:  # together - apart: what the two calls cost each other
                    row[f"extra_{name}"] = row[f"work+{name}"] - row["work"] - row[name]
                row["fastl2_waits"] = row["extra_fastl2"] - row["extra_torch"]
                rows.append(row)
                print(f"{tt:>13} {ft:>14} {row['work'] * 1e6:>10.1f} {row['fastl2'] * 1e6:>10.1f} "
                      f"{row['work+fastl2'] * 1e6:>10.1f} {row['extra_fastl2'] * 1e6:>+10.1f} "
                      f"{row['torch'] * 1e6:>10.1f} {row['work+torch'] * 1e6:>10.1f} "
                      f"{row['extra_torch'] * 1e6:>+10.1f} {row['fastl2_waits'] * 1e6:>+13.1f}", flush=True)
    finally:
        torch.set_num_threads(torch_threads)
        fastl2.set_num_threads(fastl2_threads)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6, 1e7])
    parser.add_argument("--huge", action="store_true", help="add 1e8 elements (about 1.2 GB per float32 case)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--modes", nargs="+", choices=["eager", "compile"], default=["eager", "compile"])
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-threads", type=int, help="threads for both libraries (torch.set_num_threads, "
                        "fastl2.set_num_threads); default: each library's own default")
    parser.add_argument("--threads", action="store_true", help="also time the threads of both libraries together")
    parser.add_argument("--threads-size", type=float, default=1e6, help="elements of the loss in --threads")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes] + ([10**8] if args.huge else [])
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
        fastl2.set_num_threads(args.num_threads)

    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as f:
        load = f.read().split()[:3]
    print(f"torch {torch.__version__}, fastl2 {fastl2.__version__} ({fastl2.get_backend()}), "
          f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"fastl2 threads {fastl2.get_num_threads()}, load average {' '.join(load) or 'n/a'}")
    print("medians in microseconds; ratio = torch / fastl2 (above 1: fastl2 is faster)")
    print(f"{'dtype':>9} {'n':>10} {'mode':>7} {'op':>8} {'F.mse_loss':>12} {'fastl2':>12} {'ratio':>7}")
    results = {"load": load, "losses": time_losses(sizes, args.dtypes, args.modes, args.backend,
                                                   args.budget, args.rounds, _print_row)}
    if args.threads:
        print(f"\nthreads: 256x256 matmul (work), then a mse_loss fwd+bwd step of {int(args.threads_size):.0e} "
              "float32 elements (microseconds)")
        print(f"{'torch threads':>13} {'fastl2 threads':>14} {'work':>10} {'fastl2':>10} {'work+fastl2':>10} "
              f"{'extra':>10} {'F':>10} {'work+F':>10} {'extra':>10} {'fastl2 waits':>13}")
        results["threads"] = time_threads(int(args.threads_size), args.budget, args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
