"""Benchmark: one Adam step on the parameters of a 784-512-512-10 MLP (670k floats, float32).

Sigma's fused update (one numba pass per parameter) against the same update
written with numpy array operations, the rule run on whole arrays (Sigma's
fallback for backends without a compiler), and torch.optim.Adam in its three
forms. Not collected by pytest; run it by hand:

    python benchmarks/optimiser_step.py [--repeats 200]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

SHAPES = [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)]


def _time(step, repeats: int) -> float:
    for _ in range(10):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return ([rng.standard_normal(s).astype(np.float32) for s in SHAPES],
            [rng.standard_normal(s).astype(np.float32) for s in SHAPES])


def sigma_fused(repeats):
    import sigma
    import sigma.optim
    values, grads = _data()
    params = [sigma.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = sigma.tensor(g)
    optimiser = sigma.optim.Adam(params, lr=1e-3)
    return _time(optimiser.step, repeats)


def rule_on_whole_arrays(repeats):
    import sigma.optim
    from sigma.optim.fused import rule_for
    values, grads = _data()
    names = ("exp_avg", "exp_avg_sq")
    rule = rule_for(sigma.optim.Adam.rule, names)
    states = [[np.zeros_like(v) for _ in names] for v in values]
    optimiser = sigma.optim.Adam([sigma.zeros(1, requires_grad=True)], lr=1e-3)
    counter = [0]

    def step():
        counter[0] += 1
        scalars = optimiser.scalars(optimiser.param_groups[0], counter[0])
        ordered = [np.float32(scalars[n]) for n in rule.scalar_names]
        for value, grad, state in zip(values, grads, states):
            rule.apply_with_arrays(value, grad, state, ordered)
    return _time(step, repeats)


def numpy_by_hand(repeats):
    values, grads = _data()
    exp_avgs = [np.zeros_like(v) for v in values]
    exp_avg_sqs = [np.zeros_like(v) for v in values]
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    counter = [0]

    def step():
        counter[0] += 1
        t = counter[0]
        step_size = lr / (1 - beta1 ** t)
        correction2_sqrt = (1 - beta2 ** t) ** 0.5
        for value, grad, m, v in zip(values, grads, exp_avgs, exp_avg_sqs):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            denominator = np.sqrt(v)
            denominator /= correction2_sqrt
            denominator += eps
            value -= step_size * (m / denominator)
    return _time(step, repeats)


def torch_adam(repeats, **options):
    import torch
    torch.set_num_threads(2)
    values, grads = _data()
    params = [torch.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    optimiser = torch.optim.Adam(params, lr=1e-3, **options)
    return _time(optimiser.step, repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)
    rows = [("sigma.optim.Adam (fused numba pass)", sigma_fused),
            ("Adam rule on whole numpy arrays", rule_on_whole_arrays),
            ("numpy by hand (in-place ops)", numpy_by_hand),
            ("torch.optim.Adam (default: for-loop)", torch_adam),
            ("torch.optim.Adam(foreach=True)", lambda r: torch_adam(r, foreach=True)),
            ("torch.optim.Adam(fused=True)", lambda r: torch_adam(r, fused=True))]
    results = {name: run(args.repeats) for name, run in rows}
    reference = results["torch.optim.Adam (default: for-loop)"]
    print(f"Adam step, 784-512-512-10 MLP parameters ({sum(np.prod(s) for s in SHAPES):,} float32), "
          f"median of {args.repeats}")
    for name, milliseconds in results.items():
        print(f"  {name:40s} {milliseconds:7.3f} ms   {reference / milliseconds:5.2f}x torch default")


if __name__ == "__main__":
    main()
