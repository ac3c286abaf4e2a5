"""Metrics on a batch of network outputs: top-k correct counts for classification.

They work on raw arrays through the outputs' backend (numpy or cupy), cost
no graph, and return Python numbers.

Example:
    >>> import sigma
    >>> from sigma.training.metrics import top_k_correct
    >>> scores = sigma.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    >>> labels = sigma.tensor([1, 2, 0])
    >>> top_k_correct(scores, labels, 1), top_k_correct(scores, labels, 2)
    (1, 2)
"""
from __future__ import annotations

from typing import Any

import backends


def class_labels(outputs: Any, targets: Any):
    """Integer class labels for ``targets`` if ``outputs``/``targets`` look like classification, else ``None``.

    Classification means outputs of shape (N, C) and targets that are either
    N integer labels or one-hot / probability rows of shape (N, C) with C > 1
    (non-negative, each row summing to 1); other float targets are regression.
    """
    scores, labels = getattr(outputs, "data", outputs), getattr(targets, "data", targets)
    if getattr(scores, "ndim", 0) != 2 or not hasattr(labels, "ndim"):
        return None
    if labels.ndim == 1 and labels.dtype.kind in "iu" and labels.shape[0] == scores.shape[0]:
        return labels
    if labels.ndim == 2 and labels.shape == scores.shape and labels.shape[1] > 1 and bool((labels >= 0).all()) \
            and bool((abs(labels.sum(axis=1) - 1) < 1e-3).all()):
        return labels.argmax(axis=1)
    return None


def top_k_correct(outputs: Any, targets: Any, k: int = 1) -> int:
    """How many rows have their true class among the ``k`` highest scores."""
    if k < 1:
        raise ValueError(f"top_k_correct: k must be >= 1, got {k}")
    labels = class_labels(outputs, targets)
    if labels is None:
        raise ValueError(f"top_k_correct: expected (N, C) scores with N labels or (N, C) one-hot targets, got "
                         f"outputs {getattr(outputs, 'shape', '?')} and targets {getattr(targets, 'shape', '?')}")
    return count_correct(getattr(outputs, "data", outputs), labels, k)


def count_correct(scores, labels, k: int) -> int:
    """How many rows of raw ``scores`` (N, C) rank the integer ``labels`` among their ``k`` highest."""
    if k == 1:
        return int((scores.argmax(axis=1) == labels).sum())
    classes = scores.shape[1]
    if k >= classes:
        return int(scores.shape[0])
    # A label is in the top k when fewer than k classes score strictly higher (ties count for the label).
    xp = backends.for_array(scores).xp
    true_scores = scores[xp.arange(scores.shape[0]), labels]
    higher = (scores > true_scores[:, None]).sum(axis=1)
    return int((higher < k).sum())
