"""The few places where the GUI uses the model itself: sample predictions, classifying a drawing, restoring.

These run in the training thread, between steps (as trainer commands or
from the feed hook), or on the GUI thread when the trainer is not running,
so the network is never used by two threads at once. Inputs are prepared
the way the training data's were: a drawing is scaled to the range and
shape of one raw training sample, then passed through the training
iterator's ``transform`` (normalisation, reshaping).

Example:
    >>> import numpy as np
    >>> from sigma_gui.model_access import as_display_image
    >>> as_display_image(np.array([[0.0, 0.5], [1.0, 2.0]])).tolist()
    [[0, 64], [128, 255]]
"""
from __future__ import annotations

import math
import pathlib
from typing import Any, Dict, List, Optional

import numpy as np

import sigma


class NotImages(ValueError):
    """The run's data are not images, or the GUI cannot find samples to show."""


def _data_source(trainer):
    """``(dataset, transform)`` of the first evaluation data that has them, else of the training data."""
    for data in list(trainer.evaluation.values()) + [trainer.train_data]:
        dataset = getattr(data, "dataset", None)
        if dataset is not None and hasattr(dataset, "batch"):
            return dataset, getattr(data, "transform", None)
    raise NotImages("neither the evaluation nor the training data is a sigma.data iterator over a dataset")


def image_shape(sample_shape: tuple) -> Optional[tuple]:
    """The (height, width) an input of ``sample_shape`` is shown as, or ``None`` if it is not an image.

    Example:
        >>> from sigma_gui.model_access import image_shape
        >>> image_shape((784,)), image_shape((1, 28, 28)), image_shape((6,))
        ((28, 28), (28, 28), None)
    """
    shape = tuple(int(n) for n in sample_shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        shape = shape[1:]
    if len(shape) == 2 and min(shape) >= 4:
        return shape
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side >= 8 and side * side == shape[0]:
            return side, side
    return None


def as_display_image(values: np.ndarray) -> np.ndarray:
    """``values`` scaled by their own range to uint8 0..255 (a flat image stays black)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) / (high - low) * 255).astype(np.uint8)


def _raw_inputs(dataset, count: int) -> Dict[str, np.ndarray]:
    if "inputs" not in dataset.sections:
        raise NotImages(f"the data have no 'inputs' section (they have {list(dataset.sections)})")
    return dataset.batch(slice(0, min(count, len(dataset))))


def _forward(trainer, inputs: np.ndarray) -> np.ndarray:
    """Class probabilities of the network (evaluation mode, no gradients) for a batch of prepared inputs."""
    network = trainer.network
    backend = next(iter(network.parameters())).backend
    was_training = network.training
    network.eval()
    try:
        with sigma.no_grad():
            outputs = network(sigma.Tensor(backend.asarray(np.ascontiguousarray(inputs)), device=backend))
            probabilities = sigma.softmax(outputs, axis=-1)
    finally:
        network.train(was_training)
    return np.asarray(probabilities.numpy(), dtype=np.float64)


def _prepare(transform, sections: Dict[str, np.ndarray]) -> np.ndarray:
    if transform is not None:
        sections = transform(dict(sections), np.random.default_rng(0))
    inputs = sections["inputs"]
    return inputs.numpy() if hasattr(inputs, "numpy") else np.asarray(inputs)


def sample_predictions(trainer, count: int = 16) -> Optional[Dict[str, Any]]:
    """The first ``count`` samples of the evaluation (or training) data with predicted and true labels.

    Returns ``{"images", "predicted", "targets", "confidence"}`` with JSON-ready lists, or ``None`` for
    ``count`` 0; raises :class:`NotImages` when the inputs are not images or the targets not class labels.
    """
    if count <= 0:
        return None
    dataset, transform = _data_source(trainer)
    raw = _raw_inputs(dataset, count)
    shape = image_shape(raw["inputs"].shape[1:])
    if shape is None:
        raise NotImages(f"the inputs have shape {tuple(raw['inputs'].shape[1:])} per sample, not an image")
    probabilities = _forward(trainer, _prepare(transform, raw))
    if probabilities.ndim != 2:
        raise NotImages(f"the network's outputs have shape {probabilities.shape}, not (samples, classes)")
    targets = raw.get("targets")
    if targets is not None and np.asarray(targets).ndim == 2:  # one-hot
        targets = np.asarray(targets).argmax(axis=1)
    images = [as_display_image(np.asarray(x, dtype=np.float64).reshape(-1)[:shape[0] * shape[1]].reshape(shape))
              for x in raw["inputs"]]
    return {"images": [image.tolist() for image in images],
            "predicted": probabilities.argmax(axis=1).tolist(),
            "confidence": probabilities.max(axis=1).tolist(),
            "targets": None if targets is None else np.asarray(targets).astype(int).tolist()}


def drawing_as_input(trainer, drawing: np.ndarray) -> np.ndarray:
    """A drawing (2-d, 0 background .. 1 ink) as one prepared network input, like a training sample."""
    dataset, transform = _data_source(trainer)
    raw = _raw_inputs(dataset, 64)["inputs"]
    sample_shape = raw.shape[1:]
    shape = image_shape(sample_shape)
    if shape is None:
        raise NotImages(f"the inputs have shape {tuple(sample_shape)} per sample; a drawing cannot stand for one")
    drawing = np.asarray(drawing, dtype=np.float64)
    if drawing.shape != shape:
        raise ValueError(f"the drawing is {drawing.shape[0]}x{drawing.shape[1]} pixels, the network reads "
                         f"{shape[0]}x{shape[1]} images")
    # Scale ink to the data's own range: uint8 digits go 0..255, float digits usually 0..1.
    high = float(np.max(raw)) if raw.size else 1.0
    scaled = drawing * (255.0 if high > 1.5 else max(high, 1.0))
    if np.issubdtype(raw.dtype, np.integer):
        scaled = np.clip(np.round(scaled), 0, 255)
    sample = scaled.reshape(sample_shape).astype(raw.dtype)
    return _prepare(transform, {"inputs": sample[None]})


def classify(trainer, drawing: np.ndarray) -> List[float]:
    """Class probabilities of the current network for a drawing (see :func:`drawing_as_input`)."""
    return _forward(trainer, drawing_as_input(trainer, drawing))[0].tolist()


def restore_checkpoint(trainer, path: str) -> None:
    """Load the checkpoint at ``path`` into the trainer, between steps of a running run."""
    from sigma.io import checkpoint as checkpoint_file
    path = pathlib.Path(path)
    trainer.load_state_dict(checkpoint_file.load(path))
    trainer.restored_from = path
    trainer.record("restored", path=str(path))
