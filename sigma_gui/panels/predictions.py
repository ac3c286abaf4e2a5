"""Sample predictions: a grid of fixed inputs with the predicted and the true label; wrong ones in red."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

COLUMNS = 4


def image_to_pixmap(image: np.ndarray, scale: int = 2) -> QtGui.QPixmap:
    """A uint8 grey image as a pixmap, ``scale`` times larger."""
    image = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    height, width = image.shape
    qimage = QtGui.QImage(image.data, width, height, width, QtGui.QImage.Format.Format_Grayscale8).copy()
    return QtGui.QPixmap.fromImage(qimage).scaled(width * scale, height * scale)


class PredictionsPanel(QtWidgets.QWidget):
    """The latest ``predictions`` record of the current run as a grid."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_grid = QtWidgets.QGridLayout(self)
        self.note = QtWidgets.QLabel("predictions appear at the start of training and after each epoch")
        self.note.setWordWrap(True)
        self.layout_grid.addWidget(self.note, 0, 0, 1, COLUMNS)
        self.cells = []
        self._shown = None

    def refresh(self, connection: Optional[object]) -> None:
        record = connection.state.predictions if connection is not None else None
        if record is self._shown:
            return
        self._shown = record
        for cell in self.cells:
            self.layout_grid.removeWidget(cell)
            cell.hide()  # deleteLater waits for the event loop; until then the old grid would show through
            cell.deleteLater()
        self.cells = []
        if record is None:
            self.note.setText("no predictions yet: they appear at the start of training and after each epoch "
                              "(image data, in-process or with sigma_gui.attach_remote)")
            return
        targets = record.get("targets") or [None] * len(record["predicted"])
        wrong = sum(1 for p, t in zip(record["predicted"], targets) if t is not None and p != t)
        self.note.setText(f"iteration {record.get('iteration')}: {wrong} of {len(targets)} wrong")
        for index, (image, predicted, target) in enumerate(zip(record["images"], record["predicted"], targets)):
            cell = QtWidgets.QLabel()
            cell.setPixmap(image_to_pixmap(np.array(image)))
            cell.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            mistaken = target is not None and predicted != target
            cell.setToolTip(f"predicted {predicted}, true {target}")
            cell.setStyleSheet("border: 2px solid #D55E00;" if mistaken else "border: 2px solid transparent;")
            caption = QtWidgets.QLabel(f"{predicted}" + ("" if target is None else f" (true {target})"))
            caption.setStyleSheet("color: #D55E00; font-weight: bold;" if mistaken else "")
            caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            box = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(box)
            column.setContentsMargins(1, 1, 1, 1)
            column.addWidget(cell)
            column.addWidget(caption)
            box.setProperty("mistaken", mistaken)
            self.layout_grid.addWidget(box, 1 + index // COLUMNS, index % COLUMNS)
            self.cells.append(box)
