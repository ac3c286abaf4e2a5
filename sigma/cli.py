"""The ``sigma`` command: train the demo or your own script, resume runs, watch them, inspect checkpoints.

    sigma demo [--model mlp|cnn] [--epochs N] [--sample]   train on MNIST, print test accuracy
    sigma train script.py [--epochs N | --iterations N]     run the trainer your script builds
    sigma resume runs/<name>                                continue a run from its last checkpoint
    sigma gui [runs/<name> ...]                             watch and drive runs, live or finished
    sigma inspect checkpoint.h5                             what a checkpoint holds
    sigma runs                                              the runs under ./runs

A training script defines ``make_trainer()``, returning a
``sigma.training.Trainer``, and may set ``RUN = {"epochs": 3}`` (the
arguments of ``trainer.run``; ``--epochs``/``--iterations`` override them).
The command gives the trainer a run directory under ``runs/`` and, unless
the script has its own ``Checkpoint`` hook, one that keeps
``checkpoints/last.h5`` at each epoch end and when training stops, so that
``sigma resume`` can continue.

``demo``, ``train`` and ``resume`` take ``--gui``: train with the window
open (training on a thread; closing the window stops the run after its
current step, and the last checkpoint is written), ending when the window
is closed, or when training ends with ``--gui-close-when-done``. With or
without ``--gui``, every run they start publishes its control channel
(``sigma_gui.attach_remote``: 127.0.0.1, with a token in the run
directory's ``control.json`` that only its owner can read), so that
``sigma gui runs/<name>`` opened beside it can pause, resume, step and stop
it and change its learning rate.

Example:
    >>> from sigma.cli import build_parser
    >>> build_parser().parse_args(["demo", "--model", "cnn"]).model
    'cnn'
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import socket
import sys
from typing import Any, Dict, Optional, Sequence

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


class CommandError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


# -- building trainers from recipes -------------------------------------------------------------
def _load_script(path: pathlib.Path):
    if not path.is_file():
        raise CommandError(f"training script {path} does not exist")
    name = "sigma_user_script_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # so the script can import its neighbours
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    if not callable(getattr(module, "make_trainer", None)):
        raise CommandError(f"{path} must define make_trainer() returning a sigma.training.Trainer")
    return module


def _run_arguments(defaults: Optional[Dict[str, Any]], overrides: Dict[str, Any]) -> Dict[str, Any]:
    arguments = dict(defaults or {})
    if overrides.get("epochs") is not None or overrides.get("iterations") is not None:
        arguments.pop("epochs", None)
        arguments.pop("iterations", None)
        arguments.update({k: v for k, v in overrides.items() if v is not None})
    if not any(arguments.get(k) is not None for k in ("epochs", "iterations", "until")):
        raise CommandError("say how long to train: --epochs N or --iterations N (or RUN = {'epochs': N} "
                           "in the script)")
    return arguments


def build_from_recipe(recipe: Dict[str, Any], out=None):
    """``(trainer, the recipe's default run arguments)`` for a recipe stored in a run description."""
    kind = recipe.get("kind")
    if kind == "demo":
        from sigma.training import demo
        announce = (lambda text: print(text, file=out)) if out is not None else None
        return demo.make_trainer(**recipe.get("arguments", {}), announce=announce), dict(demo.RUN)
    if kind == "script":
        module = _load_script(pathlib.Path(recipe["path"]))
        trainer = module.make_trainer()
        return trainer, dict(getattr(module, "RUN", {}) or {})
    raise CommandError(f"the run description has an unknown recipe {recipe!r}; it cannot be rebuilt")


def _prepare(trainer, run, recipe: Dict[str, Any]):
    from sigma.training import Trainer, every, hooks, on
    if not isinstance(trainer, Trainer):
        raise CommandError(f"make_trainer() returned {type(trainer).__name__}, not a sigma.training.Trainer")
    trainer.recipe = recipe
    trainer.attach_run_directory(run)
    if not any(isinstance(h, hooks.Checkpoint) for h in trainer.hooks):
        trainer.add_hook(hooks.Checkpoint(every(1, "epoch") | on("stop"), save_top_k=0, save_last=True,
                                          name="last_checkpoint"))
    _publish_control_channel(trainer)
    return trainer


def _publish_control_channel(trainer) -> None:
    """Let ``sigma gui RUN_DIR`` in another process drive the run (sigma_gui's connection layer needs no Qt).

    Every run of the command gets it, with ``--gui`` too, so that its checkpoints hold the same hooks whichever
    way it is resumed.
    """
    try:
        from sigma_gui import attach_remote
    except ImportError:  # installed without sigma_gui: the run can still be watched read-only
        return
    attach_remote(trainer)


def _check_gui(args) -> None:
    """A CommandError before anything is trained when ``--gui`` cannot open a window here."""
    if not args.gui:
        if args.gui_close_when_done:
            raise CommandError("--gui-close-when-done needs --gui")
        return
    try:
        from sigma_gui.app import launch_problem
    except ImportError as error:
        raise CommandError(f"--gui needs the sigma_gui package, which cannot be imported ({error})") from None
    problem = launch_problem()
    if problem:
        raise CommandError(f"--gui: {problem}")


def _train(trainer, run, arguments: Dict[str, Any], out, args=None) -> int:
    gui = args is not None and args.gui
    try:
        if gui:
            from sigma_gui.app import run_with_gui
            result = run_with_gui(trainer, close_when_done=args.gui_close_when_done, **arguments)
        else:
            result = trainer.run(**arguments)
    except KeyboardInterrupt:
        print(f"\ninterrupted at epoch {trainer.position.epoch}, iteration {trainer.position.iteration}; "
              f"continue with: sigma resume {run.path}", file=out)
        return EXIT_INTERRUPTED
    print(f"{result.reason} (epoch {result.epoch}, iteration {result.iteration})", file=out)
    for key in sorted(result.metrics):
        if key.startswith(("validation/", "test/")):
            print(f"  {key}: {result.metrics[key]:.4f}", file=out)
    if "test/accuracy" in result.metrics:
        print(f"test accuracy: {100 * result.metrics['test/accuracy']:.2f}%", file=out)
    print(f"run directory: {run.path}", file=out)
    return EXIT_OK


def _overrides(args) -> Dict[str, Any]:
    """The stop options given on the command line (kept in the recipe, so ``sigma resume`` reuses them)."""
    return {k: v for k, v in (("epochs", args.epochs), ("iterations", args.iterations)) if v is not None}


# -- commands ---------------------------------------------------------------------------------------------
def command_demo(args, out) -> int:
    from sigma.io import RunDirectory
    from sigma.training import demo
    _check_gui(args)
    arguments = {"model": args.model, "batch_size": args.batch_size, "sample": args.sample,
                 "checkpoint_every": args.checkpoint_every}
    recipe = demo.recipe(**arguments)
    trainer, defaults = build_from_recipe(recipe, out)
    stop = _run_arguments(defaults, {"epochs": args.epochs, "iterations": args.iterations})
    run = RunDirectory.create(args.name or f"demo-{args.model}", root=args.root)
    _prepare(trainer, run, {**recipe, "run": _overrides(args)})
    return _train(trainer, run, stop, out, args)


def command_train(args, out) -> int:
    from sigma.io import RunDirectory
    _check_gui(args)
    path = pathlib.Path(args.script).resolve()
    recipe = {"kind": "script", "path": str(path)}
    trainer, defaults = build_from_recipe(recipe)
    stop = _run_arguments(defaults, {"epochs": args.epochs, "iterations": args.iterations})
    run = RunDirectory.create(args.name or path.stem, root=args.root)
    _prepare(trainer, run, {**recipe, "run": _overrides(args)})
    return _train(trainer, run, stop, out, args)


def command_resume(args, out) -> int:
    from sigma.io import RunDirectory
    _check_gui(args)
    run = RunDirectory.open(args.run)
    description = run.read_description()
    recipe = description.get("recipe")
    if not recipe:
        raise CommandError(f"{run.path} was not started by the sigma command (its run.json has no recipe), so "
                           "there is no script to rebuild the trainer from; call trainer.restore() yourself")
    checkpoint = pathlib.Path(args.checkpoint) if args.checkpoint else run.last_checkpoint()
    if checkpoint is None:
        raise CommandError(f"{run.path} has no checkpoint to resume from (nothing in {run.checkpoints})")
    trainer, defaults = build_from_recipe(recipe, out)
    defaults = _run_arguments(defaults, recipe.get("run", {}))
    stop = _run_arguments(defaults, {"epochs": args.epochs, "iterations": args.iterations})
    _prepare(trainer, run, recipe)
    trainer.restore(checkpoint)
    print(f"resuming {run.name} from {checkpoint} (epoch {trainer.position.epoch}, "
          f"iteration {trainer.position.iteration})", file=out)
    return _train(trainer, run, stop, out, args)


def command_gui(args, out) -> int:
    try:
        from sigma_gui import app
    except ImportError as error:
        raise CommandError(f"the sigma_gui package cannot be imported ({error})") from None
    niceness = [] if args.niceness is None else ["--niceness", str(args.niceness)]
    return app.main([*niceness, *args.runs])


def _format_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def command_inspect(args, out) -> int:
    from sigma.io import checkpoint_summary
    info = checkpoint_summary(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2, default=str), file=out)
        return EXIT_OK
    header, position = info["header"], info["position"]
    created = datetime.datetime.fromtimestamp(header["created"]).strftime("%Y-%m-%d %H:%M:%S")
    print(f"{info['path']}: Sigma checkpoint, format {header['format_version']}, written by Sigma "
          f"{header['sigma_version']} on {created}, {_format_bytes(info['size_bytes'])}", file=out)
    if position:
        print(f"position: epoch {position.get('epoch')}, iteration {position.get('iteration')} "
              f"({position.get('iteration_in_epoch')} of {position.get('batches_per_epoch')} batches into the "
              "epoch)", file=out)
    if info["metrics"]:
        print("metrics:", file=out)
        for key in sorted(info["metrics"]):
            print(f"  {key}: {info['metrics'][key]:.6g}", file=out)
    total = 0
    print(f"parameters ({len(info['parameters'])}):", file=out)
    for name, entry in info["parameters"].items():
        count = 1
        for n in entry["shape"]:
            count *= n
        total += count
        print(f"  {name}: {tuple(entry['shape'])} {entry['dtype']}", file=out)
    print(f"  total: {total:,} values", file=out)
    if info["buffers"]:
        print(f"buffers ({len(info['buffers'])}):", file=out)
        for name, entry in info["buffers"].items():
            print(f"  {name}: {tuple(entry['shape'])} {entry['dtype']}", file=out)
    description = info.get("description")
    if isinstance(description, dict) and "layers" in description:
        print("network:", file=out)
        for layer in description["layers"]:
            name = "  " * layer["depth"] + (layer["name"] or "(network)")
            print(f"  {name}: {layer['type']} -> {layer['output_shape']}, {layer['parameters']:,} parameters",
                  file=out)
    optimiser = info.get("optimiser")
    if optimiser:
        print(f"optimiser: {optimiser['type']}", file=out)
        for index, group in enumerate(optimiser["param_groups"]):
            settings = ", ".join(f"{k}={v}" for k, v in group.items())
            print(f"  group {index}: {settings}", file=out)
    if info["hooks"]:
        print(f"hooks: {', '.join(info['hooks'])}", file=out)
    return EXIT_OK


def _status(description: Dict[str, Any]) -> str:
    """The run's status; a "running" run whose process is gone from this host is shown as ended."""
    status = str(description.get("status", "?"))
    pid, host = description.get("pid"), description.get("host")
    if status == "running" and isinstance(pid, int) and host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "ended unexpectedly"
        except PermissionError:  # alive, someone else's
            pass
    return status


def command_runs(args, out) -> int:
    from sigma.io import list_runs
    runs = list_runs(args.root)
    if not runs:
        print(f"no runs under {args.root}", file=out)
        return EXIT_OK
    rows = [("name", "status", "epoch", "iteration", "metric", "updated", "checkpoints")]
    for run in runs:
        try:
            description = run.read_description()
        except ValueError as error:
            rows.append((run.name, f"unreadable: {error}", "", "", "", "", ""))
            continue
        metrics = description.get("metrics") or {}
        key = next((k for k in ("test/accuracy", "validation/accuracy", "train/loss") if k in metrics), None)
        metric = f"{key} {metrics[key]:.4f}" if key else ""
        updated = description.get("updated", description.get("created"))
        when = datetime.datetime.fromtimestamp(updated).strftime("%Y-%m-%d %H:%M") if updated else ""
        rows.append((run.name, _status(description), str(description.get("epoch", "")),
                     str(description.get("iteration", "")), metric, when, str(len(run.list_checkpoints()))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigma", description="Sigma: train networks, resume runs, watch them, "
                                     "inspect checkpoints.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_stop_options(command):
        group = command.add_mutually_exclusive_group()
        group.add_argument("--epochs", type=float, help="train until this many epochs in all")
        group.add_argument("--iterations", type=int, help="train until this many steps in all")

    def add_gui_options(command):
        command.add_argument("--gui", action="store_true", help="train with the window open (needs the gui "
                             "extra); the command ends when the window is closed, which stops the run")
        command.add_argument("--gui-close-when-done", action="store_true",
                             help="with --gui: close the window when training ends")

    def add_run_options(command):
        command.add_argument("--name", help="the run's name (its folder under --root)")
        command.add_argument("--root", default="runs", help="where run directories go (default: runs)")

    demo = commands.add_parser("demo", help="train on MNIST with a progress bar and checkpoints; print test accuracy")
    demo.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    demo.add_argument("--batch-size", type=int, default=128)
    demo.add_argument("--sample", action="store_true", help="use the small MNIST sample bundled with Sigma")
    demo.add_argument("--checkpoint-every", type=int, default=100, help="steps between last.h5 updates")
    add_stop_options(demo)
    add_run_options(demo)
    add_gui_options(demo)

    train = commands.add_parser("train", help="run the trainer a script builds (its make_trainer())")
    train.add_argument("script")
    add_stop_options(train)
    add_run_options(train)
    add_gui_options(train)

    resume = commands.add_parser("resume", help="continue a run from its last checkpoint")
    resume.add_argument("run", help="the run directory, e.g. runs/demo-mlp")
    resume.add_argument("--checkpoint", help="a checkpoint other than checkpoints/last.h5")
    add_stop_options(resume)
    add_gui_options(resume)

    gui = commands.add_parser("gui", help="open runs in the window, live or finished (needs the gui extra)")
    gui.add_argument("runs", nargs="*", help="run directories to open side by side, e.g. runs/demo-mlp")
    gui.add_argument("--niceness", type=int, default=None, metavar="N",
                     help="run the window N steps of Unix niceness below the training (default 10; 19 costs a "
                          "run that keeps every core busy least, and makes the window slowest to respond)")

    inspect = commands.add_parser("inspect", help="show what a checkpoint holds")
    inspect.add_argument("checkpoint")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")

    runs = commands.add_parser("runs", help="list runs")
    runs.add_argument("--root", default="runs")
    return parser


_COMMANDS = {"demo": command_demo, "train": command_train, "resume": command_resume, "gui": command_gui,
             "inspect": command_inspect, "runs": command_runs}


def main(argv: Optional[Sequence[str]] = None, out=None) -> int:
    """Run the ``sigma`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    out = out if out is not None else sys.stdout
    args = build_parser().parse_args(argv)
    from sigma.io import CheckpointError, RunDirectoryError
    from sigma.training import NonFiniteError
    try:
        return _COMMANDS[args.command](args, out)
    except (CommandError, CheckpointError, RunDirectoryError, NonFiniteError, FileNotFoundError) as error:
        print(f"sigma {args.command}: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
