"""Iterators: a dataset's samples as batches of ``sigma.Tensor``s on a device.

* :class:`MinibatchIterator`: one epoch per ``for`` loop, shuffled per
  epoch from a seed, ``drop_last`` optional, resumable mid-epoch through
  ``state_dict()`` / ``load_state_dict()`` (position and random state).
* :class:`InfiniteStream`: the same batches, epoch after epoch, forever.
* :class:`WholeSetIterator`: the whole dataset as one batch per epoch.

Batches are dicts ``{section: Tensor}``. They are gathered and
preprocessed on the host as numpy arrays and become Tensors on ``device``
(``"cpu"``, ``"cuda:0"``, a Backend, or ``None`` for the default) only at
the end. ``prefetch=k`` prepares up to ``k`` batches ahead in a background
thread, so reading and preprocessing overlap the model's step (numpy
releases the interpreter lock for the copies that dominate).

Example:
    >>> import numpy as np
    >>> from sigma.data import InMemoryDataset, MinibatchIterator, Normalise
    >>> data = InMemoryDataset(inputs=np.arange(10.0).reshape(5, 2), targets=np.arange(5))
    >>> batches = MinibatchIterator(data, batch_size=2, seed=0, transform=Normalise(mean=0.0, std=10.0))
    >>> [batch["targets"].tolist() for batch in batches]
    [[2, 4], [3, 0], [1]]
    >>> batches.epoch, batches.state_dict()["position"]
    (1, 0)
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import numpy as np

from sigma.data.datasets import Dataset
from sigma.data.errors import DataError

STATE_VERSION = 1


def to_tensors(sections: Dict[str, np.ndarray], device: Any = None) -> Dict[str, Any]:
    """Host arrays -> ``{section: sigma.Tensor}`` on ``device`` (no copy on the CPU when possible).

    Example:
        >>> import numpy as np
        >>> from sigma.data.iterators import to_tensors
        >>> to_tensors({"x": np.ones(2, np.float32)}, "cpu")["x"].device
        'cpu'
    """
    import sigma
    return {name: sigma.tensor(np.ascontiguousarray(values), device=device) for name, values in sections.items()}


def _seed_from_default_stream() -> int:
    # Unseeded iterators follow sigma.manual_seed, so a seeded program stays reproducible.
    from sigma.device import default_backend
    return int(default_backend().random.integers(0, 2 ** 62, (1,))[0])


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def prefetched(source: Iterator, depth: int) -> Iterator:
    """Items of ``source`` produced up to ``depth`` ahead in a background thread, in order.

    Errors in the thread reappear in the consumer; leaving the loop early
    stops the thread.

    Example:
        >>> from sigma.data.iterators import prefetched
        >>> list(prefetched(iter(range(5)), depth=2))
        [0, 1, 2, 3, 4]
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be at least 1, got {depth}")
    items: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(_Failure(error))

    thread = threading.Thread(target=work, name="sigma-data-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


class MinibatchIterator:
    """Minibatches of a dataset, one epoch per ``for`` loop; shuffled per epoch and resumable.

    Args:
        dataset: any :class:`~sigma.data.datasets.Dataset`.
        batch_size: samples per batch.
        shuffle: a new random order every epoch. A block-cached dataset is shuffled block-wise
            (blocks in random order, samples mixed within groups that fit its memory budget).
        drop_last: leave out the last batch of an epoch when it is smaller than ``batch_size``.
        seed: the random seed; ``None`` draws one from Sigma's default random stream
            (so ``sigma.manual_seed`` makes runs repeatable).
        device: where batches go (``"cpu"``, ``"cuda:0"``, a Backend; ``None``: the default).
        transform: a preprocessor (or function of the host sections) applied to each batch.
            Random transforms get a generator seeded by (epoch, batch position), so a resumed run
            augments exactly as an uninterrupted one.
        sections: the sections to deliver (default: all).
        prefetch: batches prepared ahead in a background thread (0: none).

    ``state_dict()`` holds the epoch, the number of batches delivered in it
    and the random state at its start; ``load_state_dict`` on a fresh
    iterator over the same data continues with exactly the next batch.

    Example:
        >>> import numpy as np
        >>> from sigma.data import InMemoryDataset, MinibatchIterator
        >>> data = InMemoryDataset(targets=np.arange(6))
        >>> first = MinibatchIterator(data, batch_size=2, seed=3)
        >>> _ = next(iter(first))
        >>> second = MinibatchIterator(data, batch_size=2, seed=3)
        >>> second.load_state_dict(first.state_dict())
        >>> [b["targets"].tolist() for b in second] == [b["targets"].tolist() for b in first]
        True
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 seed: Optional[int] = None, device: Any = None, transform: Optional[Callable] = None,
                 sections: Optional[Sequence[str]] = None, prefetch: int = 0):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"expected a sigma.data Dataset, got {type(dataset).__name__}; wrap arrays with "
                            f"sigma.data.InMemoryDataset(inputs=..., targets=...)")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be 0 or more, got {prefetch}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        self.transform = _as_transform(transform)
        self.sections = tuple(sections) if sections is not None else None
        for name in self.sections or ():
            dataset._check_section(name)
        self.prefetch = int(prefetch)
        self.seed = _seed_from_default_stream() if seed is None else int(seed)
        self.length = len(dataset)
        if len(self) == 0:
            raise DataError(f"no batches: the dataset has {self.length} samples and batch_size is {self.batch_size}"
                            f"{' with drop_last=True' if self.drop_last else ''}")
        self.epoch = 0
        self.position = 0
        self._epoch_start_state = np.random.Generator(np.random.PCG64(self.seed)).bit_generator.state

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.length, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {len(self)} batches of {self.batch_size} from {self.length} samples, "
                f"epoch {self.epoch}, position {self.position}>")

    # -- checkpoints --------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Where the iteration stands: plain ints and strings, ready for a checkpoint."""
        return {"version": STATE_VERSION, "epoch": self.epoch, "position": self.position,
                "random_state": _plain(self._epoch_start_state), "seed": self.seed,
                "batch_size": self.batch_size, "length": self.length, "shuffle": self.shuffle,
                "drop_last": self.drop_last}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from a ``state_dict()``; the iterator must have the same data size and batching."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"iterator state version {state.get('version')!r} is not {STATE_VERSION}")
        for key in ("batch_size", "length", "shuffle", "drop_last"):
            if state[key] != getattr(self, key):
                raise ValueError(f"iterator state has {key}={state[key]!r}, this iterator has "
                                 f"{key}={getattr(self, key)!r}; resume with the same dataset and settings")
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"iterator state position {state['position']} is outside 0..{len(self)}")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._epoch_start_state = _plain(state["random_state"])

    # -- iteration ----------------------------------------------------------------
    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self._deliver(self._host_batches(forever=False))

    def _plan(self, start_state: Dict[str, Any]):
        """The order of one epoch, its augmentation seed, and the random state of the next epoch."""
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = start_state
        if not self.shuffle:
            order = None
        elif hasattr(self.dataset, "shuffled_order"):
            order = self.dataset.shuffled_order(generator)
        else:
            order = generator.permutation(self.length)
        epoch_seed = int(generator.integers(0, 2 ** 62))
        return order, epoch_seed, generator.bit_generator.state

    def _host_batches(self, forever: bool):
        """(tag, host sections) for the batches from the current position on; tag says where they are."""
        # Read the position now, not when the generator first runs (that may be in the prefetch thread).
        return self._generate(self.epoch, self.position, self._epoch_start_state, forever)

    def _generate(self, epoch: int, position: int, start_state: Dict[str, Any], forever: bool):
        batches = len(self)
        random_transform = self.transform is not None and self.transform.random
        while True:
            order, epoch_seed, next_state = self._plan(start_state)
            for p in range(position, batches):
                start = p * self.batch_size
                stop = min(start + self.batch_size, self.length)
                indices = slice(start, stop) if order is None else order[start:stop]
                sections = self.dataset.batch(indices)
                if self.sections is not None:
                    sections = {name: sections[name] for name in self.sections}
                if self.transform is not None:
                    random = np.random.default_rng([epoch_seed, p]) if random_transform else None
                    sections = self.transform(sections, random)
                yield (epoch, p + 1, start_state, next_state), sections
            if not forever:
                return
            epoch, position, start_state = epoch + 1, 0, next_state

    def _deliver(self, host_batches) -> Iterator[Dict[str, Any]]:
        source = prefetched(host_batches, self.prefetch) if self.prefetch else host_batches
        batches = len(self)
        try:
            for (epoch, position, start_state, next_state), sections in source:
                if position == batches:
                    self.epoch, self.position, self._epoch_start_state = epoch + 1, 0, next_state
                else:
                    self.epoch, self.position, self._epoch_start_state = epoch, position, start_state
                yield to_tensors(sections, self.device)
        finally:
            if hasattr(source, "close"):
                source.close()


class InfiniteStream(MinibatchIterator):
    """Minibatches without end: epoch after epoch, each reshuffled; use ``next(stream)``.

    Example:
        >>> import numpy as np
        >>> from sigma.data import InfiniteStream, InMemoryDataset
        >>> stream = InfiniteStream(InMemoryDataset(targets=np.arange(3)), batch_size=2, shuffle=False)
        >>> [next(stream)["targets"].tolist() for _ in range(3)]
        [[0, 1], [2], [0, 1]]
    """

    _active: Optional[Iterator] = None

    def __iter__(self) -> "InfiniteStream":
        return self

    def __next__(self) -> Dict[str, Any]:
        if self._active is None:
            self._active = self._deliver(self._host_batches(forever=True))
        return next(self._active)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.close()
        super().load_state_dict(state)

    def close(self) -> None:
        """Stop the background thread (if any); the next ``next()`` continues where this left off."""
        if self._active is not None:
            self._active.close()
            self._active = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class WholeSetIterator:
    """The whole dataset as a single batch, once per ``for`` loop (full-batch training, evaluation).

    Example:
        >>> import numpy as np
        >>> from sigma.data import InMemoryDataset, WholeSetIterator
        >>> [b["targets"].shape for b in WholeSetIterator(InMemoryDataset(targets=np.arange(4)))]
        [(4,)]
    """

    def __init__(self, dataset: Dataset, *, device: Any = None, transform: Optional[Callable] = None,
                 sections: Optional[Sequence[str]] = None, seed: int = 0):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"expected a sigma.data Dataset, got {type(dataset).__name__}")
        self.dataset, self.device = dataset, device
        self.transform = _as_transform(transform)
        self.sections = tuple(sections) if sections is not None else None
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        sections = self.dataset.batch(slice(None))
        if self.sections is not None:
            sections = {name: sections[name] for name in self.sections}
        if self.transform is not None:
            sections = self.transform(sections, np.random.default_rng([self.seed, self.epoch]))
        self.epoch += 1
        yield to_tensors(sections, self.device)

    def state_dict(self) -> Dict[str, Any]:
        return {"version": STATE_VERSION, "epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])


def _as_transform(transform: Optional[Callable]) -> Optional[Callable]:
    if transform is None:
        return None
    from sigma.data.preprocessing import Preprocessor, UserFunction
    if isinstance(transform, Preprocessor):
        return transform
    if callable(transform):
        return UserFunction(transform)
    raise TypeError(f"transform must be a preprocessor or a function, got {type(transform).__name__}")


def _plain(state: Any) -> Any:
    """A deep copy made of dicts, lists, ints and strings (numpy's states hold only these)."""
    if isinstance(state, dict):
        return {str(k): _plain(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return [_plain(v) for v in state]
    if isinstance(state, np.integer):
        return int(state)
    return state
