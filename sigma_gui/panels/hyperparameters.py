"""Live hyperparameters: the optimiser's numbers per parameter group; an edit becomes a command.

The trainer applies the command between steps and records it in the event
log; the table shows the new value once the run reports it (and marks the
cell as pending until then).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

from PyQt6 import QtCore, QtGui, QtWidgets

from sigma_gui.control import ControlError


def parse_number(text: str, old: Any) -> Any:
    """``text`` as a value of ``old``'s type (int or float); a ValueError that names the problem.

    Example:
        >>> from sigma_gui.panels.hyperparameters import parse_number
        >>> parse_number("3e-4", 0.001), parse_number("8", 4)
        (0.0003, 8)
    """
    try:
        value = int(text) if isinstance(old, int) and not isinstance(old, bool) else float(text)
    except ValueError:
        kind = "a whole number" if isinstance(old, int) else "a number"
        raise ValueError(f"{text!r} is not {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


class HyperparameterPanel(QtWidgets.QWidget):
    """A table of (group, name, value) rows; edit a value and press Enter to send it."""

    message = QtCore.pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.connection = None
        self.pending: Dict[Tuple[int, str], Any] = {}
        layout = QtWidgets.QVBoxLayout(self)
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["group", "hyperparameter", "value"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.itemChanged.connect(self._edited)
        layout.addWidget(self.table)
        self.note = QtWidgets.QLabel("Edits are applied by the training loop at the next step.")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self._rows: List[Tuple[int, str]] = []
        self._filling = False

    def _editable(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def refresh(self, connection: Optional[object]) -> None:
        if connection is not self.connection:
            self.pending.clear()
        self.connection = connection
        groups = connection.state.hyperparameters if connection is not None else []
        rows = [(index, name) for index, group in enumerate(groups) for name, value in group.items()
                if self._editable(value)]
        self._filling = True
        try:
            if rows != self._rows:
                self._rows = rows
                self.table.setRowCount(len(rows))
                for row, (group, name) in enumerate(rows):
                    for column, text in ((0, str(group)), (1, name)):
                        item = QtWidgets.QTableWidgetItem(text)
                        item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
                        self.table.setItem(row, column, item)
                    self.table.setItem(row, 2, QtWidgets.QTableWidgetItem(""))
            controllable = connection is not None and connection.can_control and connection.state.live
            for row, (group, name) in enumerate(rows):
                item = self.table.item(row, 2)
                value = groups[group][name]
                pending = self.pending.get((group, name))
                if pending is not None and _same(pending, value):
                    del self.pending[(group, name)]
                    pending = None
                if self.table.currentItem() is item and self.table.state() == \
                        QtWidgets.QAbstractItemView.State.EditingState:
                    continue
                text = f"{value:g}" if isinstance(value, float) else str(value)
                if pending is not None:
                    text = f"{pending:g} (pending)"
                if item.text() != text:
                    item.setText(text)
                colour = QtGui.QColor("#D55E00" if pending is not None else "#000000")
                if item.foreground().color() != colour:  # each change repaints the table: only real ones
                    item.setForeground(QtGui.QBrush(colour))
                flags = item.flags()
                wanted = flags | QtCore.Qt.ItemFlag.ItemIsEditable if controllable \
                    else flags & ~QtCore.Qt.ItemFlag.ItemIsEditable
                if wanted != flags:
                    item.setFlags(wanted)
        finally:
            self._filling = False

    def set_value(self, group: int, name: str, text: str) -> bool:
        """Send ``name = text`` for parameter group ``group`` to the run (what an edit does)."""
        if self.connection is None:
            return False
        old = self.connection.state.hyperparameters[group][name]
        try:
            value = parse_number(text.replace("(pending)", "").strip(), old)
            if name == "lr":
                self.connection.send("set_lr", value=value, group=group)
            else:
                self.connection.send("set_hyperparameter", name=name, value=value, group=group)
        except (ValueError, ControlError) as error:
            self.message.emit(f"{name} not changed: {error}")
            return False
        self.pending[(group, name)] = value
        self.message.emit(f"{name} = {value:g} sent; the trainer applies it at the next step")
        return True

    def _edited(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._filling or item.column() != 2:
            return
        group, name = self._rows[item.row()]
        self.set_value(group, name, item.text())
        self.refresh(self.connection)  # the cell shows the sent value as pending, or the old one again


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=0.0)
    except (TypeError, ValueError):
        return a == b
