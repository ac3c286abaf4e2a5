"""Each beautiful-MNIST convolution layer, forward + backward: Sigma against PyTorch CPU.

The four layers of examples/beautiful_mnist.py at their training input sizes
(batch 128 unless --batch says otherwise). The first layer gets no input
gradient, as in training (its input is the data). Each thread count runs in
its own subprocess, because numpy's BLAS, numba and PyTorch fix their thread
pools when they load; within it Sigma and PyTorch alternate, so that machine
noise hits both alike.

With one thread the times are CPU seconds of the process (what other jobs on
a shared machine disturb least); with more they are wall-clock seconds. Each
is the median of --repeats runs. "Sigma im2col only" is Sigma with the CPU
backend's Winograd convolution turned off: the same as "Sigma" on layers
that im2col computes anyway.

    python benchmarks/conv_layers.py [--threads 1 2] [--batch 128] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import machine, table  # noqa: E402

# (name, input channels, output channels, kernel, input height = width, input needs a gradient)
LAYERS = [
    ("conv1 1->32 5x5", 1, 32, 5, 28, False),
    ("conv2 32->32 5x5", 32, 32, 5, 24, True),
    ("conv3 32->64 3x3", 32, 64, 3, 10, True),
    ("conv4 64->64 3x3", 64, 64, 3, 8, True),
]


def _median_seconds(function, repeats: int, clock) -> float:
    function()  # warm-up: compilation, allocator, thread pools
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return statistics.median(times)


def _worker(threads: int, batch: int, repeats: int) -> list:
    import numpy as np
    import backends
    import sigma
    import torch
    cpu = backends.get("cpu")
    torch.set_num_threads(threads)
    clock = time.process_time if threads == 1 else time.perf_counter
    rng = np.random.default_rng(0)
    results = []
    for name, cin, cout, k, size, input_grad in LAYERS:
        x = rng.standard_normal((batch, cin, size, size), dtype=np.float32)
        w = rng.standard_normal((cout, cin, k, k), dtype=np.float32) * 0.1
        out_size = size - k + 1
        g = rng.standard_normal((batch, cout, out_size, out_size), dtype=np.float32)

        xs, ws, gs = sigma.tensor(x, requires_grad=input_grad), sigma.tensor(w, requires_grad=True), sigma.tensor(g)

        def sigma_step():
            xs.grad = ws.grad = None
            sigma.conv2d(xs, ws).backward(gs)

        xt, wt, gt = torch.from_numpy(x).requires_grad_(input_grad), torch.from_numpy(w).requires_grad_(), \
            torch.from_numpy(g)

        def torch_step():
            xt.grad = wt.grad = None
            torch.nn.functional.conv2d(xt, wt).backward(gt)

        def im2col_step():   # Sigma with Winograd's algorithm off: where it applies, what it gains
            cpu.winograd = False
            try:
                sigma_step()
            finally:
                cpu.winograd = True

        sigma_step()
        torch_step()
        np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), rtol=1e-3, atol=1e-2 * np.abs(wt.grad.numpy()).max())
        times = {"sigma": [], "im2col": [], "torch": []}
        for _ in range(2):  # alternate the frameworks
            times["sigma"].append(_median_seconds(sigma_step, repeats, clock))
            times["torch"].append(_median_seconds(torch_step, repeats, clock))
            times["im2col"].append(_median_seconds(im2col_step, repeats, clock))
        winograd = cpu.winograd_applies(x.dtype, w.shape, (out_size, out_size), (1, 1), (0, 0), (1, 1), 1)
        results.append({"layer": name, "algorithm": "Winograd" if winograd else "im2col",
                        **{key: min(values) for key, values in times.items()}})
    return results


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.threads[0], args.batch, args.repeats)))
        return ""
    rows = []
    for threads in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, __file__, "--worker", "--threads", str(threads), "--batch",
                              str(args.batch), "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True, cwd=ROOT, env=env)
        for result in json.loads(out.stdout.strip().splitlines()[-1]):
            rows.append([result["layer"], threads, result["algorithm"], f"{result['sigma'] * 1e3:.1f}",
                         f"{result['im2col'] * 1e3:.1f}", f"{result['torch'] * 1e3:.1f}",
                         f"{result['torch'] / result['sigma']:.2f}"])
    load = os.getloadavg()[0]
    text = (f"Convolution layers, forward + backward, batch {args.batch}, median of {args.repeats} "
            f"({machine()}; load average {load:.1f})\n\n"
            + table(["layer", "threads", "Sigma's algorithm", "Sigma ms", "Sigma im2col only ms", "PyTorch ms",
                     "speed ratio (PyTorch ms / Sigma ms)"], rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
