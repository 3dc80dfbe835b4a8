"""Train one small PyTorch regression model twice: with fastl2.torch.nn.MSELoss and with
torch.nn.MSELoss, from the same seed, on data this script makes. Prints both loss curves (the same
within float tolerance) and the step times side by side.

    python examples/train_regression.py [--steps 100] [--samples 4096] [--outputs 64] [--threads N] [--json FILE]

Each step is a full-batch step: model forward, loss, backward, Adam update; the two runs take
their steps in turn, so that a busy machine slows both alike. The loss covers
samples x outputs elements (262,144 by default), enough for the loss to be more than noise in
the step time; the step time is dominated by the model's matrix products all the same.
On a busy machine, --threads 1 keeps OpenMP teams from waiting for descheduled threads (which
slows both runs alike, by milliseconds per step). It runs in about 10 s here.
"""
import argparse
import copy
import json
import statistics
import time

import torch

import fastl2.torch


def make_data(samples, features, outputs, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=generator)
    mixing = torch.randn(features, outputs, generator=generator) / features**0.5
    y = torch.tanh(x @ mixing) + 0.1 * torch.randn(samples, outputs, generator=generator)
    return x, y


def make_model(features, hidden, outputs, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, outputs)
    )


def train_side_by_side(runs, x, y, steps, lr):
    """Train every (model, loss_fn) of ``runs`` for ``steps`` steps, one step of each in turn (so
    that a busy machine slows them alike); returns {name: (losses, step times)}."""
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=lr) for name, (model, _) in runs.items()}
    curves = {name: ([], []) for name in runs}
    for _ in range(steps):
        for name, (model, loss_fn) in runs.items():
            start = time.perf_counter()
            optimizers[name].zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizers[name].step()
            curves[name][1].append(time.perf_counter() - start)
            curves[name][0].append(loss.item())
    return curves


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--outputs", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=0, help="print every k-th step (default: about 20 lines)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (fastl2 follows it)")
    parser.add_argument("--json", help="write both curves and step times to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    x, y = make_data(args.samples, args.features, args.outputs, args.seed)
    model = make_model(args.features, args.hidden, args.outputs, args.seed)
    twin = copy.deepcopy(model)  # the same initial weights for both runs
    runs = train_side_by_side(
        {"fastl2": (model, fastl2.torch.nn.MSELoss()), "torch": (twin, torch.nn.MSELoss())},
        x, y, args.steps, args.lr,
    )
    (ours, our_times), (theirs, their_times) = runs["fastl2"], runs["torch"]

    every = args.every or max(1, args.steps // 20)
    print(f"{args.samples} samples x {args.outputs} outputs ({args.samples * args.outputs:,} loss elements), "
          f"{args.steps} Adam steps, torch threads {torch.get_num_threads()}, fastl2 threads {fastl2.get_num_threads()}")
    print(f"{'step':>6} {'fastl2 MSELoss':>16} {'torch MSELoss':>16} {'rel. diff':>10} {'fastl2 ms':>10} {'torch ms':>10}")
    for step in range(args.steps):
        if step % every == 0 or step == args.steps - 1:
            rel = abs(ours[step] - theirs[step]) / abs(theirs[step])
            print(f"{step:>6} {ours[step]:>16.8f} {theirs[step]:>16.8f} {rel:>10.1e} "
                  f"{our_times[step] * 1e3:>10.2f} {their_times[step] * 1e3:>10.2f}")
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs))
    print(f"largest relative difference between the curves: {worst:.1e}")
    print(f"median step: fastl2 {statistics.median(our_times) * 1e3:.2f} ms, "
          f"torch {statistics.median(their_times) * 1e3:.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: {"losses": losses, "times": times} for name, (losses, times) in runs.items()}, f)
    return runs


if __name__ == "__main__":
    main()
