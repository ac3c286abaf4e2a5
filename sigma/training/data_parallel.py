"""The pieces data-parallel operators share: shards of a batch, flat buffers, merge strategies, worker streams.

A data-parallel step: every worker takes its shard of the batch, computes
gradients, and the workers merge them. With :class:`GradientAllReduce`
(the default) the gradients, weighted by shard size, are summed over the
workers in one flat buffer, so the update is the one a single worker would
make on the whole batch. With :class:`ModelAveraging` the workers step on
their own and their parameters are averaged every few iterations or epochs.

Example:
    >>> import numpy as np
    >>> from sigma.training.data_parallel import shard_bounds, take_shard
    >>> [shard_bounds(5, 2, index) for index in range(2)]
    [(0, 3), (3, 5)]
    >>> take_shard({"inputs": np.arange(5), "targets": np.arange(5)}, 1, 2)["inputs"]
    array([3, 4])
"""
from __future__ import annotations

import contextlib
import copy
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from sigma.tensor import Tensor
from sigma.training.metrics import class_labels, count_correct

# The tail of a gradient buffer: loss summed over samples, correct predictions,
# samples with class labels, samples.
_STATISTICS = 4


def shard_bounds(count: int, parts: int, index: int) -> Tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``index`` when ``count`` rows are cut into ``parts`` nearly equal pieces."""
    if not 0 <= index < parts:
        raise ValueError(f"shard index {index} is outside 0..{parts - 1}")
    size, extra = divmod(count, parts)
    start = index * size + min(index, extra)
    return start, start + size + (1 if index < extra else 0)


def take_shard(batch: Any, index: int, parts: int) -> Any:
    """Worker ``index``'s contiguous rows of every section of ``batch`` (a dict or an ``(inputs, targets)`` pair)."""
    from sigma.training.operators import split_batch
    inputs, _ = split_batch(batch)
    start, stop = shard_bounds(len(inputs), parts, index)

    def rows(value):
        if isinstance(value, Tensor):
            return Tensor(value.data[start:stop], device=value.backend)
        if hasattr(value, "shape") and len(getattr(value, "shape", ())) > 0:
            return value[start:stop]
        return value

    if isinstance(batch, dict):
        return {name: rows(value) for name, value in batch.items()}
    return type(batch)(rows(value) for value in batch)


class GradientAllReduce:
    """Merge by summing the shard-weighted gradients of all workers before one update (the default).

    Mathematically one large batch: the result equals one worker training
    on the concatenated shards, up to float rounding.
    """

    name = "all_reduce"

    def __repr__(self) -> str:
        return "GradientAllReduce()"


class ModelAveraging:
    """Workers train on their own shards and their parameters are averaged every ``every`` iterations,
    or at each epoch end with ``every="epoch"`` (Sigma.Core's scheme). Floating buffers (batch
    normalisation statistics) are averaged too; optimiser states stay each worker's own.
    """

    name = "average"

    def __init__(self, every: Union[int, str] = "epoch"):
        if every != "epoch" and not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
            raise ValueError(f"ModelAveraging: every must be a number of iterations >= 1 or 'epoch', got {every!r}")
        self.every = every

    def due(self, iterations_since_average: int) -> bool:
        return self.every != "epoch" and iterations_since_average >= self.every

    def __repr__(self) -> str:
        return f"ModelAveraging(every={self.every!r})"


def merge_strategy(merge: Any) -> Union[GradientAllReduce, ModelAveraging]:
    """``"all_reduce"``, ``"average"`` (every epoch) or a strategy object, as a strategy object."""
    if isinstance(merge, (GradientAllReduce, ModelAveraging)):
        return merge
    if merge == "all_reduce":
        return GradientAllReduce()
    if merge == "average":
        return ModelAveraging()
    raise ValueError(f"merge must be 'all_reduce', 'average', GradientAllReduce() or ModelAveraging(every=...), "
                     f"got {merge!r}")


class FlatBuffer:
    """One flat array holding a network's gradients (or parameters) and floating buffers, plus step statistics.

    Packing everything into one array makes one all-reduce per step however
    many parameters the network has.
    """

    def __init__(self, network, allocate: Optional[Any] = None):
        """``allocate(size, dtype)``, where given, provides the flat array (shared memory between processes);
        by default it is a fresh array of zeros on the network's backend."""
        self.parameters = list(network.parameters())
        if not self.parameters:
            raise ValueError("data-parallel training needs a network with parameters")
        backend = self.parameters[0].backend
        xp = backend.xp
        self.buffers = [b for b in network.buffers() if xp.issubdtype(b.data.dtype, xp.floating)]
        self.backend = backend
        dtype = xp.result_type(*[p.data.dtype for p in self.parameters])
        offsets, start = [], 0
        for tensor in self.parameters + self.buffers:
            offsets.append((start, start + tensor.data.size))
            start += tensor.data.size
        self.offsets = offsets
        self.values = start
        self.array = xp.zeros(start + _STATISTICS, dtype=dtype) if allocate is None else \
            allocate(start + _STATISTICS, dtype)
        self.kept = None

    def _views(self) -> Iterator[Tuple[Tensor, Any, bool]]:
        count = len(self.parameters)
        for position, tensor in enumerate(self.parameters + self.buffers):
            start, stop = self.offsets[position]
            yield tensor, self.array[start:stop], position < count

    def pack_gradients(self, weight: float) -> None:
        """Gradients times ``weight`` (a shard's sample count), and floating buffers times ``weight``."""
        xp = self.backend.xp
        for tensor, view, is_parameter in self._views():
            source = tensor.grad if is_parameter else tensor
            if source is None or weight == 0:
                view[...] = 0
            else:
                # One pass straight into the buffer. Weight gradients come out of backward column-major;
                # laying them out row-major here spares the optimiser's kernel its own contiguous copy.
                xp.multiply(source.data, weight, out=view.reshape(source.data.shape))

    def unpack_gradients(self, scale: float, gradients: bool = True) -> None:
        """Scale the buffer by ``scale``; gradients (if ``gradients``) become views of it, and floating
        buffers take its values. The views stay valid until the next packing."""
        if scale != 1.0:
            self.array[:self.values] *= scale
        # The gradients backward made are kept until the next step's backward (see release_gradients), as a
        # single worker keeps its .grad: freed here, in mid-step, glibc hands their pages back to the system
        # and the next backward pays page faults on fresh ones (measured: the weight-gradient products of the
        # large MLP ran 1.5x slower).
        self.kept = [tensor.grad for tensor in self.parameters]
        for tensor, view, is_parameter in self._views():
            if is_parameter:
                if gradients:
                    tensor.grad = Tensor(view.reshape(tensor.data.shape), device=tensor.backend)
            else:
                tensor.data[...] = view.reshape(tensor.data.shape)

    def release_gradients(self) -> None:
        """Let go of the previous step's backward gradients (call before the next backward)."""
        self.kept = None

    def pack_values(self) -> None:
        """Parameters and floating buffers, as they are."""
        for tensor, view, _ in self._views():
            view[...] = tensor.data.reshape(-1)

    def unpack_values(self) -> None:
        """Write the buffer back into parameters and floating buffers, in place."""
        for tensor, view, _ in self._views():
            tensor.data[...] = view.reshape(tensor.data.shape)

    @property
    def statistics(self) -> Any:
        return self.array[self.values:]


def step_statistics(outputs: Any, targets: Any, loss: Any, count: int) -> List[float]:
    """``[loss * count, correct, labelled samples, count]`` for one shard's forward pass."""
    if count == 0:
        return [0.0, 0.0, 0.0, 0.0]
    labels = class_labels(outputs, targets)
    correct = 0 if labels is None else count_correct(outputs.data, labels, 1)
    return [float(loss.item()) * count, float(correct), 0.0 if labels is None else float(count), float(count)]


def report_from_statistics(statistics: Sequence[float]) -> Dict[str, Any]:
    """The merged report from summed statistics (see :func:`step_statistics`)."""
    loss_sum, correct, labelled, count = (float(value) for value in statistics)
    if count == 0:
        raise ValueError("a data-parallel step received an empty batch on every worker")
    report: Dict[str, Any] = {"train/loss": loss_sum / count, "batch_size": int(round(count))}
    if labelled > 0:
        report["train/accuracy"] = correct / labelled
    return report


def gradient_step(worker, shard: Any, communicator, flat: FlatBuffer, update: bool,
                  defer_update: bool = False, total: Optional[int] = None) -> Dict[str, Any]:
    """One worker's part of a synchronous step: gradients on its shard, all-reduce, (optionally) the update.

    Every worker calls this at the same time. Workers whose parameters are
    shared with another worker's pass ``update=False``. With ``update=True``
    and ``defer_update=True`` the summed gradients are put in place and the
    caller applies them later, with :func:`apply_update`. ``total``: the
    samples of all shards together, where the caller knows it; each worker
    then weights its gradients by its share before the all-reduce, and the
    summed buffer needs no second pass to become the mean.
    """
    from sigma.training.operators import _on, split_batch
    inputs, targets = split_batch(shard)
    count = len(inputs)
    worker.optimiser.zero_grad()
    flat.release_gradients()
    statistics = [0.0, 0.0, 0.0, 0.0]
    if count:
        inputs, targets = _on(inputs, worker.backend), _on(targets, worker.backend)
        outputs = worker.network(inputs)
        loss = worker.loss(outputs, targets)
        loss.backward()
        statistics = step_statistics(outputs, targets, loss, count)
    flat.pack_gradients(count if total is None else count / total)
    flat.statistics[...] = flat.backend.asarray(statistics, dtype=flat.array.dtype)
    communicator.all_reduce(flat.array, "sum")
    totals = worker.backend.to_host(flat.statistics).tolist()
    if total is not None and abs(totals[3] - total) > 0.5:
        raise ValueError(f"gradient_step: the shards held {totals[3]:g} samples, the caller said {total}")
    report = report_from_statistics(totals)
    flat.unpack_gradients(1.0 / totals[3] if total is None else 1.0, gradients=update)
    if update and not defer_update:
        apply_update(worker)
    return report


def apply_update(worker) -> None:
    """Clip the worker's gradients (when it clips) and take its optimiser's step."""
    if worker.gradient_clip is not None:
        from sigma.optim import clip_grad_norm
        clip_grad_norm(worker.optimiser.parameters(), worker.gradient_clip)
    worker.optimiser.step()


def local_step(worker, shard: Any, communicator, flat: FlatBuffer) -> Dict[str, Any]:
    """One worker's step under model averaging: its own update on its shard; only statistics are merged."""
    from sigma.training.operators import split_batch
    count = len(split_batch(shard)[0])
    statistics = [0.0, 0.0, 0.0, 0.0]
    if count:
        report = worker.train_step(shard)
        loss = report["train/loss"]
        loss = float(loss.item()) if isinstance(loss, Tensor) else float(loss)
        accuracy = report.get("train/accuracy")
        statistics = [loss * count, 0.0 if accuracy is None else accuracy * count,
                      0.0 if accuracy is None else float(count), float(count)]
    merged = flat.backend.asarray(statistics, dtype=flat.array.dtype)
    communicator.all_reduce(merged, "sum")
    return report_from_statistics(flat.backend.to_host(merged).tolist())


def average_parameters(communicator, flat: FlatBuffer) -> None:
    """Replace a worker's parameters and floating buffers by their mean over the group."""
    flat.pack_values()
    flat.statistics[...] = 0
    communicator.all_reduce(flat.array, "mean")
    flat.unpack_values()


def broadcast_parameters(communicator, flat: FlatBuffer, root: int = 0) -> None:
    """Give every worker ``root``'s parameters and floating buffers."""
    flat.pack_values()
    communicator.broadcast(flat.array, root)
    flat.unpack_values()


class _SeededOnFirstDraw:
    """A worker's random stream for one step, seeded when the worker first draws from it: seeding a generator
    costs about 20 us, and most steps of most networks (no dropout) draw nothing."""

    __slots__ = ("template", "seed", "_stream")

    def __init__(self, template, seed: int):
        self.template, self.seed, self._stream = template, seed, None

    def stream(self):
        if self._stream is None:
            self._stream = copy.copy(self.template)
            self._stream.seed(self.seed)
        return self._stream


class WorkerStreams:
    """Stands in for a backend's random stream so that each worker thread draws from its own.

    Installed as ``backend.random`` while an operator runs. A thread inside
    :meth:`using` draws from the stream it was given; every other use
    (seeding, checkpoints saving the state, the trainer's thread outside a
    step) goes to the backend's shared stream, which stays what
    checkpoints save and ``sigma.manual_seed`` seeds.
    """

    def __init__(self, shared):
        self.shared = shared
        self._local = threading.local()

    @classmethod
    def install(cls, backend) -> "WorkerStreams":
        if isinstance(backend.random, cls):
            return backend.random
        streams = cls(backend.random)
        backend.random = streams
        return streams

    @staticmethod
    def uninstall(backend) -> None:
        if isinstance(backend.random, WorkerStreams):
            backend.random = backend.random.shared

    def for_step(self, workers: int) -> List[Any]:
        """One fresh stream per worker for this step, seeded from one draw of the shared stream.

        Drawing the seed from the shared stream keeps runs repeatable and
        makes checkpoints (which save the shared stream) restore exactly.
        """
        base = int(self.shared.integers(0, 2 ** 62, (1,))[0])
        return [self.seeded(base + index) for index in range(workers)]

    def seeded(self, seed: int) -> "_SeededOnFirstDraw":
        """A stream of the shared stream's kind seeded with ``seed``, made when something first draws from it."""
        return _SeededOnFirstDraw(self.shared, seed)

    @contextlib.contextmanager
    def using(self, stream) -> Iterator[None]:
        previous = getattr(self._local, "stream", None)
        self._local.stream = stream
        try:
            yield
        finally:
            self._local.stream = previous

    def _current(self):
        stream = getattr(self._local, "stream", None)
        if stream is None:
            return self.shared
        return stream.stream() if isinstance(stream, _SeededOnFirstDraw) else stream

    def seed(self, seed: int) -> None:
        self.shared.seed(seed)

    def get_state(self) -> dict:
        return self.shared.get_state()

    def set_state(self, state: dict) -> None:
        self.shared.set_state(state)

    def uniform(self, *arguments, **options):
        return self._current().uniform(*arguments, **options)

    def normal(self, *arguments, **options):
        return self._current().normal(*arguments, **options)

    def integers(self, *arguments, **options):
        return self._current().integers(*arguments, **options)

    def permutation(self, *arguments, **options):
        return self._current().permutation(*arguments, **options)

    def __getattr__(self, name: str):
        if name in ("shared", "_local"):  # not set yet (during copying)
            raise AttributeError(name)
        return getattr(self.shared, name)
