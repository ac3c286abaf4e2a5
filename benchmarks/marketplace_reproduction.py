"""Marketplace V2 against backpropagation on MNIST: validation accuracy and loss against steps.

Reproduces, within the CPU time this machine can give, two results of the
Marketplace reference (Fang-Pen Lin, 2025; LaunchPlatform/marketplace):

(a) V2 against backprop + SGD at lr 1e-3, 3e-3, 7e-3 and against Adam, on
    the same network, the same initial weights and the same batches;
(b) V2's steps to 96% validation accuracy (the reference: 16 vendors,
    batch 512, lr 0.3, decay 1e-5, probe_scale 0.01, ``whole``, within
    2,000 steps of the full-width CNN).

One V2 step of the reference setup costs minutes on a 2-core CPU, so the
script first times one step of the chosen setup and prints how many steps
``--budget-cpu-seconds`` buys; V2 runs ``--steps`` steps (fewer if the
budget runs out; ``--stop-at-target`` ends it at ``--target``) and the
backprop runs as many as V2 made. Everything that differs from the
reference is a flag and is printed. ``--methods`` picks some of the runs,
so two processes can share the work; ``--plot-only`` merges their CSVs:

    OPENBLAS_NUM_THREADS=1 python benchmarks/marketplace_reproduction.py --methods v2 adam --csv a.csv &
    OPENBLAS_NUM_THREADS=1 python benchmarks/marketplace_reproduction.py --methods sgd --csv b.csv
    python benchmarks/marketplace_reproduction.py --plot-only a.csv b.csv --plots docs/images

(One BLAS thread: on a loaded machine OpenBLAS's threads mostly spin; the
same step then takes 2-3x less CPU time.) The CSV has one row per
evaluation: method, step, seconds and cpu_seconds (training time so far),
train_loss (the last batch's), validation_loss, validation_accuracy.
Validation is MNIST's test split, as in the reference. Plots need
matplotlib (``pip install .[bench]``).
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import time
from typing import Dict, List

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "examples"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import sigma
import sigma.optim
from sigma import nn

import sigma_marketplace
from marketplace_mnist import STAGE_ENDS, mnist_arrays, model

CSV_FIELDS = ["method", "step", "seconds", "cpu_seconds", "train_loss", "validation_loss", "validation_accuracy"]


def evaluate(network, images: np.ndarray, labels: np.ndarray, batch: int = 1000):
    """Mean cross-entropy and accuracy of ``network`` on the validation images."""
    loss_function = nn.CrossEntropyLoss()
    loss_sum, correct = 0.0, 0
    with sigma.no_grad():
        for start in range(0, len(images), batch):
            logits = network(sigma.tensor(images[start:start + batch]))
            targets = labels[start:start + batch]
            loss_sum += float(loss_function(logits, sigma.tensor(targets)).item()) * len(targets)
            correct += int((logits.argmax(axis=1).numpy() == targets).sum())
    return loss_sum / len(images), correct / len(images)


def batch_indices(seed: int, steps: int, batch: int, count: int) -> np.ndarray:
    """The same batches for every method: (steps, batch) indices into the training set."""
    return np.random.default_rng(seed).integers(0, count, (steps, batch))


class Run:
    """Trains one copy of the network with one method and records its evaluations."""

    def __init__(self, method: str, network, step_function, validation, eval_every: int):
        self.method, self.network, self.step_function = method, network, step_function
        self.validation, self.eval_every = validation, eval_every
        self.rows: List[Dict[str, float]] = []
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def record(self, step: int, train_loss: float) -> Dict[str, float]:
        loss, accuracy = evaluate(self.network, *self.validation)
        row = {"method": self.method, "step": step, "seconds": round(self.seconds, 3),
               "cpu_seconds": round(self.cpu_seconds, 3),
               "train_loss": train_loss, "validation_loss": loss, "validation_accuracy": accuracy}
        self.rows.append(row)
        print(f"{self.method:>12}  step {step:5d}  train loss {train_loss:.4f}  validation loss {loss:.4f}  "
              f"accuracy {accuracy:.4f}  {self.seconds / max(step, 1):.3f} s/step "
              f"({self.cpu_seconds / max(step, 1):.3f} s CPU)", flush=True)
        return row

    def train(self, batches: np.ndarray, images: np.ndarray, labels: np.ndarray, target: float = None,
              budget_cpu_seconds: float = None) -> int:
        """Steps through ``batches``; stops early at ``target`` accuracy or past ``budget_cpu_seconds``."""
        self.record(0, float("nan"))
        train_loss = float("nan")
        for step, index in enumerate(batches, start=1):
            started, cpu_started = time.perf_counter(), time.process_time()
            train_loss = self.step_function(sigma.tensor(images[index]), sigma.tensor(labels[index]))
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.process_time() - cpu_started
            if step % self.eval_every == 0 or step == len(batches):
                row = self.record(step, train_loss)
                if target is not None and row["validation_accuracy"] >= target:
                    return step
                if budget_cpu_seconds is not None and self.cpu_seconds >= budget_cpu_seconds:
                    return step
        return len(batches)


def marketplace_step(network, args):
    stages = sigma_marketplace.Stages.split(network, STAGE_ENDS)
    optimiser = sigma_marketplace.MarketplaceV2(
        stages, vendors=args.vendors, lr=args.lr, decay=args.decay, probe_scale=args.probe_scale,
        normalise=args.normalise, upstream=[None] + [args.upstream] * (len(stages) - 1), seed=args.seed)
    loss_function = nn.CrossEntropyLoss()

    def step(inputs, targets) -> float:
        return float(optimiser.step(optimiser.make_handle(network, loss_function, inputs, targets)))
    return step, optimiser


def backprop_step(network, optimiser):
    loss_function = nn.CrossEntropyLoss()

    def step(inputs, targets) -> float:
        optimiser.zero_grad()
        loss = loss_function(network(inputs), targets)
        loss.backward()
        optimiser.step()
        return float(loss.item())
    return step


def fresh_network(args, initial_state):
    network = model(tuple(args.channels))
    network.load_state_dict(initial_state)
    return network


def run_all(args) -> List[Dict[str, float]]:
    sigma.manual_seed(args.seed)
    train_x, train_y = mnist_arrays("train")
    test_x, test_y = mnist_arrays("test")
    validation = (test_x[:args.validation_samples], test_y[:args.validation_samples])
    initial_state = {name: value.copy() if hasattr(value, "copy") else value
                     for name, value in model(tuple(args.channels)).state_dict().items()}
    batches = batch_indices(args.seed, args.steps, args.batch, len(train_x))
    rows: List[Dict[str, float]] = []
    steps = args.steps
    if "v2" in args.methods:
        # Time one step first, to say what the CPU budget buys.
        probe_network = fresh_network(args, initial_state)
        probe_step, optimiser = marketplace_step(probe_network, args)
        started = time.process_time()
        probe_step(sigma.tensor(train_x[batches[0]]), sigma.tensor(train_y[batches[0]]))
        step_seconds = time.process_time() - started
        budget = args.budget_cpu_seconds
        affordable = "no budget" if budget is None else f"{budget / step_seconds:.0f} steps fit in {budget:.0f} s"
        print(f"V2: channels {args.channels}, {args.vendors} vendors, upstream {args.upstream}, "
              f"{optimiser.plan_for(1).path_count} paths, batch {args.batch}, lr {args.lr}, decay {args.decay}, "
              f"probe_scale {args.probe_scale}, {args.normalise}; one step {step_seconds:.2f} s of CPU: "
              f"{affordable} (asked for {args.steps})", flush=True)
        network = fresh_network(args, initial_state)
        step, _ = marketplace_step(network, args)
        v2 = Run("marketplace-v2", network, step, validation, args.eval_every)
        steps = v2.train(batches, train_x, train_y, target=args.target if args.stop_at_target else None,
                         budget_cpu_seconds=budget)
        rows.extend(v2.rows)
    baselines = []
    if "sgd" in args.methods:
        baselines += [(f"sgd-{lr:g}", lambda params, lr=lr: sigma.optim.SGD(params, lr=lr)) for lr in args.sgd_lrs]
    if "adam" in args.methods:
        baselines.append((f"adam-{args.adam_lr:g}", lambda params: sigma.optim.Adam(params, lr=args.adam_lr)))
    for name, make in baselines:
        network = fresh_network(args, initial_state)
        run = Run(name, network, backprop_step(network, make(network.parameters())), validation, args.eval_every)
        run.train(batches[:steps], train_x, train_y)
        rows.extend(run.rows)
    return rows


def write_csv(rows: List[Dict[str, float]], path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: pathlib.Path) -> List[Dict[str, float]]:
    with open(path, newline="") as handle:
        return [{key: (value if key == "method" else float(value)) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def curves(rows) -> Dict[str, Dict[str, np.ndarray]]:
    by_method: Dict[str, Dict[str, np.ndarray]] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        chosen = [row for row in rows if row["method"] == method]
        by_method[method] = {key: np.array([float(row[key]) for row in chosen]) for key in CSV_FIELDS[1:]}
    return by_method


def first_step_reaching(curve: Dict[str, np.ndarray], accuracy: float):
    reached = np.flatnonzero(curve["validation_accuracy"] >= accuracy)
    return int(curve["step"][reached[0]]) if len(reached) else None


def summary(rows, thresholds=(0.5, 0.8, 0.9, 0.95, 0.96)) -> str:
    """A Markdown table: per method, the last accuracy and loss, the time per step, and the first evaluated step
    at each accuracy threshold."""
    lines = ["| method | steps | validation accuracy | validation loss | CPU s/step | "
             + " | ".join(f"steps to {t:.0%}" for t in thresholds) + " |",
             "|---" * (5 + len(thresholds)) + "|"]
    for method, curve in curves(rows).items():
        steps = int(curve["step"][-1])
        reached = [first_step_reaching(curve, t) for t in thresholds]
        lines.append(f"| {method} | {steps} | {curve['validation_accuracy'][-1]:.2%} | "
                     f"{curve['validation_loss'][-1]:.3f} | {curve['cpu_seconds'][-1] / max(steps, 1):.3f} | "
                     + " | ".join("–" if r is None else str(r) for r in reached) + " |")
    return "\n".join(lines)


def plot(rows, folder: pathlib.Path, target: float) -> List[pathlib.Path]:
    """marketplace-vs-backprop.png (accuracy and loss against steps) and marketplace-v2-accuracy.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    data = curves(rows)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, curve in data.items():
        style = {"linewidth": 2.2, "color": "black"} if method.startswith("marketplace") else {"linewidth": 1.3}
        left.plot(curve["step"], curve["validation_accuracy"] * 100, label=method, **style)
        right.plot(curve["step"], curve["validation_loss"], label=method, **style)
    left.set(xlabel="step", ylabel="validation accuracy (%)", ylim=(0, 100), title="MNIST validation accuracy")
    right.set(xlabel="step", ylabel="validation loss (cross-entropy)", yscale="log", title="MNIST validation loss")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    left.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    comparison = folder / "marketplace-vs-backprop.png"
    figure.savefig(comparison, dpi=110)
    plt.close(figure)

    v2 = next(curve for method, curve in data.items() if method.startswith("marketplace"))
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    by_step.plot(v2["step"], v2["validation_accuracy"] * 100, color="black")
    by_time.plot(v2["cpu_seconds"] / 60, v2["validation_accuracy"] * 100, color="black")
    for axes, label in ((by_step, "step"), (by_time, "training CPU time, one thread (minutes)")):
        axes.axhline(target * 100, color="tab:red", linestyle="--", label=f"target {target:.0%}")
        axes.set(xlabel=label, ylabel="validation accuracy (%)", ylim=(0, 100))
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
    by_step.set_title("Marketplace V2 on MNIST")
    figure.tight_layout()
    accuracy = folder / "marketplace-v2-accuracy.png"
    figure.savefig(accuracy, dpi=110)
    plt.close(figure)
    return [comparison, accuracy]


def main(argv=None) -> List[Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs=2, default=[8, 16], help="reference: 32 64")
    parser.add_argument("--vendors", type=int, default=8, help="reference: 16")
    parser.add_argument("--upstream", type=int, default=2, help="k upstream products per vendor; reference: all")
    parser.add_argument("--batch", type=int, default=128, help="reference: 512")
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--decay", type=float, default=1e-5)
    parser.add_argument("--probe-scale", type=float, default=0.01)
    parser.add_argument("--normalise", choices=["whole", "per_spec"], default="whole")
    parser.add_argument("--sgd-lrs", type=float, nargs="+", default=[1e-3, 3e-3, 7e-3])
    parser.add_argument("--adam-lr", type=float, default=1e-3)
    parser.add_argument("--methods", nargs="+", choices=["v2", "sgd", "adam"], default=["v2", "sgd", "adam"])
    parser.add_argument("--steps", type=int, default=2000, help="the reference: 2,000")
    parser.add_argument("--budget-cpu-seconds", type=float, default=None,
                        help="stop V2 (and so the others) once its training has used this much CPU time")
    parser.add_argument("--target", type=float, default=0.96)
    parser.add_argument("--stop-at-target", action="store_true", help="end V2 at the first evaluation >= target")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--validation-samples", type=int, default=5000, help="the first n of the test split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", type=pathlib.Path, default=pathlib.Path("runs/marketplace-reproduction.csv"))
    parser.add_argument("--plots", type=pathlib.Path, default=None, help="folder for the PNG plots")
    parser.add_argument("--plot-only", type=pathlib.Path, nargs="+", default=None,
                        help="plot existing CSVs together; train nothing")
    args = parser.parse_args(argv)
    if args.plot_only is not None:
        rows = [row for path in args.plot_only for row in read_csv(path)]
    else:
        rows = run_all(args)
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}")
    print(summary(rows))
    if args.plots is not None:
        for path in plot(rows, args.plots, args.target):
            print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
