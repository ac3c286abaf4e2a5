"""The checkpoints panel: the run's checkpoint files with their position and metrics; restore or inspect one."""
from __future__ import annotations

import json
import pathlib
from typing import Dict, Optional

from PyQt6 import QtCore, QtWidgets

from sigma_gui.control import ControlError

SHOWN_METRICS = ("validation/accuracy", "validation/loss", "train/loss", "test/accuracy")


def summarise(path: str) -> Dict:
    """The checkpoint's summary (``sigma.io.checkpoint_summary``), or ``{"error": ...}`` if it cannot be read."""
    from sigma.io import CheckpointError, checkpoint_summary
    try:
        return checkpoint_summary(path)
    except (CheckpointError, OSError) as error:
        return {"error": str(error)}


class CheckpointsPanel(QtWidgets.QWidget):
    """A table of checkpoints; "Restore this" sends ``restore_checkpoint`` to a live run, "Open" shows the file."""

    message = QtCore.pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.connection = None
        self.summaries: Dict[str, Dict] = {}
        layout = QtWidgets.QVBoxLayout(self)
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["file", "epoch", "iteration", "metrics"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        layout.addWidget(self.table)
        buttons = QtWidgets.QHBoxLayout()
        self.restore_button = QtWidgets.QPushButton("Restore this")
        self.restore_button.clicked.connect(self.restore_selected)
        self.open_button = QtWidgets.QPushButton("Open")
        self.open_button.clicked.connect(self.open_selected)
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self._paths = []
        self.dialogs = []

    def refresh(self, connection: Optional[object]) -> None:
        self.connection = connection
        entries = connection.state.checkpoints if connection is not None else []
        paths = [entry.path for entry in entries]
        live = connection is not None and connection.can_control and connection.state.live
        self.restore_button.setEnabled(live)
        if paths == self._paths:
            return
        self._paths = paths
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            summary = self.summaries.get(entry.path)
            if summary is None:
                summary = self.summaries[entry.path] = summarise(entry.path)
            position = summary.get("position") or {}
            metrics = summary.get("metrics") or entry.metrics
            shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in SHOWN_METRICS if isinstance(metrics.get(k), float))
            cells = (pathlib.Path(entry.path).name, str(position.get("epoch", entry.epoch if entry.epoch is not None
                                                                    else "?")),
                     str(position.get("iteration", entry.iteration if entry.iteration is not None else "?")),
                     summary.get("error", shown))
            for column, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(entry.path)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()

    def selected_path(self) -> Optional[str]:
        row = self.table.currentRow()
        return self._paths[row] if 0 <= row < len(self._paths) else None

    def restore_selected(self) -> None:
        path = self.selected_path()
        if path is None or self.connection is None:
            self.message.emit("select a checkpoint first")
            return
        try:
            self.connection.send("restore_checkpoint", path=path)
        except ControlError as error:
            self.message.emit(str(error))
            return
        self.message.emit(f"restoring {path} at the next step")

    def open_selected(self) -> Optional[QtWidgets.QDialog]:
        """Show what the selected checkpoint holds (as ``sigma inspect`` does) in a dialog."""
        path = self.selected_path()
        if path is None:
            self.message.emit("select a checkpoint first")
            return None
        summary = self.summaries.get(path) or summarise(path)
        dialog = QtWidgets.QDialog(self)
        dialog.setWindowTitle(pathlib.Path(path).name)
        layout = QtWidgets.QVBoxLayout(dialog)
        text = QtWidgets.QPlainTextEdit(json.dumps(summary, indent=2, default=str))
        text.setReadOnly(True)
        layout.addWidget(text)
        dialog.resize(520, 480)
        dialog.open()
        self.dialogs.append(dialog)
        return dialog
