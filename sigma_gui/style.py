"""Colours the GUI gives runs and lines: a palette that stays readable on white and for common colour blindness.

Example:
    >>> from sigma_gui.style import PALETTE
    >>> PALETTE[0]
    '#0072B2'
"""
from __future__ import annotations

# The Okabe-Ito palette (Okabe & Ito, "Color Universal Design", 2008), without its black and yellow.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00")


def run_colour(index: int):
    """The QColor of the ``index``-th run (or line); the palette repeats after six."""
    from PyQt6 import QtGui
    return QtGui.QColor(PALETTE[index % len(PALETTE)])
