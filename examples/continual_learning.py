"""Continual learning with Marketplace: a digit classifier learns dresses from its users' feedback.

A base MNIST CNN is trained with Marketplace V2 (forward passes only), or
loaded. Then it serves a stream: every request holds 240 digits and 16
Fashion-MNIST dresses (class 3 of Fashion-MNIST, labelled 3). Each sample
goes through its own random path of perturbed vendors; the labels come
back as feedback and the model makes one V2 update per 256 answers
(8 vendors, lr 0.3, probe_scale 0.3 by default; the reference's setup
is 4 vendors, lr 1e-2, probe_scale 1.0 over 10,000 steps).
Accuracy on held-out digits and dresses (with the unperturbed weights) is
printed against steps.

    python examples/continual_learning.py --quick                       # the CI version (under a minute)
    python examples/continual_learning.py --save-base runs/base.npz --plot continual.png
    python examples/continual_learning.py --base runs/base.npz --steps 500 --run-dir runs/continual
    python -m sigma_gui runs/continual                                  # watch it, live or afterwards

The session is an ordinary ``sigma.training`` run (the operator
``sigma_marketplace.ContinualServing``), so ``--run-dir`` writes the event
log the GUI reads: served accuracies per step (``served_digits/accuracy``,
``served_dresses/accuracy``) and held-out ones (``digits/accuracy``,
``dresses/accuracy``). MNIST and Fashion-MNIST are found through Sigma's
data search path. ``--plot`` needs matplotlib.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any, Dict, List

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
for folder in (HERE, HERE.parent):   # marketplace_mnist next to this file; the plug-in from a checkout
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.data import InMemoryDataset, MinibatchIterator
from sigma.training import Trainer, every, hooks, on

import sigma_marketplace
from marketplace_mnist import STAGE_ENDS, accuracy, mnist_arrays, model

DRESS = 3           # Fashion-MNIST's class index for dresses; the model learns to answer 3 for them
GROUPS = ("digits", "dresses")


def dress_arrays(split: str):
    """Fashion-MNIST dresses as float32 (N, 1, 28, 28), normalised like the digits, and their labels (all 3)."""
    data = sigma.data.load("fashion_mnist", split=split)
    images = data.inputs[data.targets == DRESS].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return (images - 0.1307) / 0.3081, np.full(len(images), DRESS, dtype=np.int64)


class RequestStream:
    """Requests of ``digits`` random digits and ``dresses`` random dresses, shuffled together.

    Request ``i`` is a pure function of ``(seed, i)``, and the position is
    saved with checkpoints, so a resumed session serves the same stream.
    One "epoch" is ``requests_per_epoch`` requests.
    """

    def __init__(self, digits, dresses, digits_per_request: int = 240, dresses_per_request: int = 16,
                 requests_per_epoch: int = 100, seed: int = 0):
        self.digits, self.dresses = digits, dresses
        self.counts = (int(digits_per_request), int(dresses_per_request))
        self.requests_per_epoch = int(requests_per_epoch)
        self.seed = int(seed)
        self.position = 0

    def __len__(self) -> int:
        return self.requests_per_epoch

    def request(self, index: int) -> Dict[str, np.ndarray]:
        generator = np.random.Generator(np.random.Philox(np.random.SeedSequence([self.seed, index])))
        parts = []
        for group, ((images, labels), count) in enumerate(zip((self.digits, self.dresses), self.counts)):
            chosen = generator.integers(0, len(images), count)
            parts.append((images[chosen], labels[chosen], np.full(count, group)))
        order = generator.permutation(sum(self.counts))
        inputs, targets, group = (np.concatenate(column)[order] for column in zip(*parts))
        return {"inputs": inputs, "targets": targets, "group": group}

    def __iter__(self):
        for _ in range(self.requests_per_epoch - self.position % self.requests_per_epoch):
            self.position += 1
            yield self.request(self.position - 1)

    def state_dict(self) -> Dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.position = int(state["position"])


def train_base(network, args, train_x, train_y, test_x, test_y) -> float:
    """The base model, on digits only: Marketplace V2 (the reference: 16 vendors, batch 512, lr 0.3, 2,000
    steps), or with ``--base-optimiser adam`` backprop, a quick stand-in for a well-trained base."""
    loss_function = nn.CrossEntropyLoss()
    if args.base_optimiser == "v2":
        stages = sigma_marketplace.Stages.split(network, STAGE_ENDS)
        optimiser = sigma_marketplace.MarketplaceV2(stages, vendors=args.base_vendors, lr=args.base_lr,
                                                    decay=args.base_decay, probe_scale=args.base_probe_scale,
                                                    seed=args.seed)

        def step_on(inputs, targets):
            optimiser.step(optimiser.make_handle(network, loss_function, inputs, targets))
    else:
        optimiser = sigma.optim.Adam(network.parameters(), lr=args.base_lr)

        def step_on(inputs, targets):
            optimiser.zero_grad()
            loss_function(network(inputs), targets).backward()
            optimiser.step()
    rng = np.random.default_rng(args.seed)
    for step in range(1, args.base_steps + 1):
        index = rng.integers(0, len(train_x), args.base_batch)
        step_on(sigma.tensor(train_x[index]), sigma.tensor(train_y[index]))
        if step % max(1, args.base_steps // 5) == 0 or step == args.base_steps:
            print(f"base model: step {step:5d}  digit accuracy {accuracy(network, test_x, test_y):.4f}", flush=True)
    return accuracy(network, test_x, test_y)


def save_network(network, path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{name: value.numpy() for name, value in network.state_dict().items()})


def load_network(network, path: pathlib.Path) -> None:
    with np.load(path) as saved:
        network.load_state_dict({name: saved[name] for name in saved.files})


class Curves(hooks.Hook):
    """Collects the held-out and served accuracies after every step, and the first and last requests."""

    def __init__(self, operator: sigma_marketplace.ContinualServing):
        super().__init__(on("start") | every(1, "iteration"), name="curves")
        self.operator = operator
        self.rows: List[Dict[str, float]] = []
        self.first_request = None

    def __call__(self, trainer) -> None:
        values = trainer.observation
        row = {"step": trainer.position.iteration}
        for key in ("digits/accuracy", "dresses/accuracy", "served_digits/accuracy", "served_dresses/accuracy"):
            if key in values:
                row[key] = float(values[key])
        self.rows.append(row)
        if self.first_request is None and self.operator.last_request is not None:
            self.first_request = self.operator.last_request


def grid_image(request: Dict[str, np.ndarray], side: int = 16) -> np.ndarray:
    """The request's first side x side samples as one RGB image, each framed green (right) or red (wrong)."""
    cell = 28 + 4
    image = np.ones((side * cell, side * cell, 3), dtype=np.float32)
    pixels = request["inputs"].reshape(-1, 28, 28) * 0.3081 + 0.1307
    for index in range(min(side * side, len(pixels))):
        row, column = divmod(index, side)
        top, left = row * cell, column * cell
        right = request["predictions"][index] == request["targets"][index]
        image[top:top + cell, left:left + cell] = (0.1, 0.65, 0.1) if right else (0.85, 0.1, 0.1)
        image[top + 2:top + 30, left + 2:left + 30] = np.clip(1.0 - pixels[index], 0, 1)[..., None]
    return image


def plot(path: pathlib.Path, rows: List[Dict[str, float]], first, last) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure = plt.figure(figsize=(15, 5))
    curves = figure.add_subplot(1, 3, 1)
    for key, label, style, colour in (("digits/accuracy", "digits (held out)", "-", "tab:blue"),
                                      ("dresses/accuracy", "dresses (held out)", "-", "tab:orange"),
                                      ("served_digits/accuracy", "digits served", ":", "tab:blue"),
                                      ("served_dresses/accuracy", "dresses served", ":", "tab:orange")):
        points = [(row["step"], row[key] * 100) for row in rows if key in row]
        if points:
            steps, values = zip(*points)
            curves.plot(steps, values, style, color=colour, label=label, linewidth=1.8 if style == "-" else 0.8)
    curves.set(xlabel="step (one request served, one update)", ylabel="accuracy (%)", ylim=(0, 100),
               title="Continual learning with Marketplace V2")
    curves.grid(alpha=0.3)
    curves.legend(loc="center right", fontsize=8)
    for position, (request, title) in enumerate(((first, "first request served"), (last, "last request served"))):
        axes = figure.add_subplot(1, 3, position + 2)
        axes.imshow(grid_image(request))
        dresses = request["group"] == 1
        correct = request["predictions"] == request["targets"]
        axes.set_title(f"{title}: digits {correct[~dresses].mean():.0%}, dresses {correct[dresses].mean():.0%} "
                       f"right\n(green frame: right, red: wrong)", fontsize=9)
        axes.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=pathlib.Path, default=None, help="load the base model (.npz) instead")
    parser.add_argument("--save-base", type=pathlib.Path, default=None, help="save the trained base model (.npz)")
    parser.add_argument("--channels", type=int, nargs=2, default=[8, 16], help="the reference: 32 64")
    parser.add_argument("--base-steps", type=int, default=1000, help="the reference: 2,000")
    parser.add_argument("--base-vendors", type=int, default=4, help="the reference: 16")
    parser.add_argument("--base-batch", type=int, default=128, help="the reference: 512")
    parser.add_argument("--base-optimiser", choices=["v2", "adam"], default="v2",
                        help="train the base with Marketplace V2 (forward only) or, as a quick stand-in, Adam")
    parser.add_argument("--base-lr", type=float, default=None, help="default: 0.3 for v2, 3e-3 for adam")
    parser.add_argument("--base-decay", type=float, default=0.0, help="the reference: 1e-5")
    parser.add_argument("--base-probe-scale", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=300, help="requests served (one update each)")
    parser.add_argument("--digits-per-request", type=int, default=240)
    parser.add_argument("--dresses-per-request", type=int, default=16)
    parser.add_argument("--vendors", type=int, default=8, help="the reference: 4 (see docs/marketplace.md)")
    parser.add_argument("--lr", type=float, default=0.3, help="the reference: 1e-2 (see docs/marketplace.md)")
    parser.add_argument("--probe-scale", type=float, default=0.3, help="the reference: 1.0")
    parser.add_argument("--normalise", choices=["whole", "per_spec"], default="whole")
    parser.add_argument("--baseline", action="store_true", help="learn from each sample's loss relative to the "
                        "unperturbed model's (Sigma's addition; one more forward pass per request)")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--test-digits", type=int, default=2000, help="held-out digits evaluated")
    parser.add_argument("--run-dir", type=pathlib.Path, default=None, help="write a run directory for the GUI")
    parser.add_argument("--plot", type=pathlib.Path, default=None, help="write the curves and grids as a PNG")
    parser.add_argument("--quick", action="store_true", help="the CI version: a narrow CNN, a base trained "
                        "with 200 Adam steps, 100 requests of 120 digits + 8 dresses")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.channels, args.base_steps, args.base_batch, args.base_optimiser = [4, 8], 200, 64, "adam"
        args.steps, args.digits_per_request, args.dresses_per_request = 100, 120, 8
        args.eval_every, args.test_digits = 20, 1000
    if args.base_lr is None:
        args.base_lr = 0.3 if args.base_optimiser == "v2" else 3e-3
    started = time.perf_counter()
    sigma.manual_seed(args.seed)
    train_x, train_y = mnist_arrays("train")
    test_x, test_y = mnist_arrays("test")
    test_x, test_y = test_x[:args.test_digits], test_y[:args.test_digits]
    dresses_train, dresses_test = dress_arrays("train"), dress_arrays("test")

    network = model(tuple(args.channels))
    if args.base is not None:
        load_network(network, args.base)
        base_accuracy = accuracy(network, test_x, test_y)
        print(f"base model from {args.base}: digit accuracy {base_accuracy:.4f}")
    else:
        base_accuracy = train_base(network, args, train_x, train_y, test_x, test_y)
    if args.save_base is not None:
        save_network(network, args.save_base)

    loss_function = nn.CrossEntropyLoss()
    request_size = args.digits_per_request + args.dresses_per_request
    learner = sigma_marketplace.ContinualLearner(
        sigma_marketplace.Stages.split(network, STAGE_ENDS), loss_function, vendors=args.vendors, lr=args.lr,
        probe_scale=args.probe_scale, batch=request_size, seed=args.seed, baseline=args.baseline,
        normalise=args.normalise)
    operator = sigma_marketplace.ContinualServing(learner, groups=GROUPS)
    stream = RequestStream((train_x, train_y), dresses_train, args.digits_per_request, args.dresses_per_request,
                           seed=args.seed + 1)
    evaluate_when = on("start") | every(args.eval_every, "iterations")
    if args.steps % args.eval_every:
        evaluate_when = evaluate_when | on("stop")      # the last step is evaluated too
    curves = Curves(operator)
    held_out = {"digits": (test_x, test_y), "dresses": dresses_test}
    evaluators = [hooks.Evaluator(name, MinibatchIterator(InMemoryDataset(inputs=x, targets=y), batch_size=1000,
                                                          shuffle=False), trigger=evaluate_when)
                  for name, (x, y) in held_out.items()]
    trainer = Trainer(network, loss_function, learner.optimiser, stream, operator=operator,
                      hooks=evaluators + [curves], run_directory=args.run_dir)
    print(f"serving {args.steps} requests of {args.digits_per_request} digits + {args.dresses_per_request} dresses; "
          f"{args.vendors} vendors, lr {args.lr}, probe_scale {args.probe_scale}"
          f"{', losses relative to the unperturbed model' if args.baseline else ''}")
    trainer.run(iterations=args.steps)

    print("  step  digits  dresses  (held out)   digits  dresses  (served)")
    for row in curves.rows:
        if "digits/accuracy" in row:
            served = [row.get(key) for key in ("served_digits/accuracy", "served_dresses/accuracy")]
            served_text = "  ".join("   -  " if value is None else f"{value:6.1%}" for value in served)
            print(f"{row['step']:6d}  {row['digits/accuracy']:6.1%}  {row['dresses/accuracy']:6.1%}"
                  f"               {served_text}")
    evaluated = [row for row in curves.rows if "digits/accuracy" in row]
    result = {"base_digit_accuracy": base_accuracy,
              "steps": [row["step"] for row in evaluated],
              "digit_accuracy": [row["digits/accuracy"] for row in evaluated],
              "dress_accuracy": [row["dresses/accuracy"] for row in evaluated],
              "updates": learner.updates, "seconds": time.perf_counter() - started,
              "run_directory": None if trainer.run_directory is None else trainer.run_directory.path}
    print(f"digits {result['digit_accuracy'][0]:.1%} -> {result['digit_accuracy'][-1]:.1%}, dresses "
          f"{result['dress_accuracy'][0]:.1%} -> {result['dress_accuracy'][-1]:.1%} after {learner.updates} updates "
          f"({result['seconds']:.0f} s)")
    if args.plot is not None:
        plot(args.plot, curves.rows, curves.first_request, operator.last_request)
        print(f"wrote {args.plot}")
    return result


if __name__ == "__main__":
    main()
