"""The network's structure (from ``describe()``) and, for the layer clicked, its weight and gradient histograms."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets


def _shape_text(shape) -> str:
    if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
        return "(" + ", ".join(str(n) for n in shape) + ")"
    return str(shape)


class StructurePanel(QtWidgets.QTreeWidget):
    """Layers as a tree: name, type, output shape, parameters. ``layer_selected`` gives the dotted name."""

    layer_selected = QtCore.pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setColumnCount(4)
        self.setHeaderLabels(["layer", "type", "output shape", "parameters"])
        self.itemClicked.connect(lambda item, _column: self.layer_selected.emit(item.data(0, 256) or ""))
        self._shown = None

    def refresh(self, connection: Optional[object]) -> None:
        network = connection.state.network if connection is not None else None
        if network is self._shown:
            return
        self._shown = network
        self.clear()
        if not network or "layers" not in network:
            text = (network or {}).get("error", "the network is described after the first step")
            self.addTopLevelItem(QtWidgets.QTreeWidgetItem([text]))
            return
        parents: List[QtWidgets.QTreeWidgetItem] = []
        for layer in network["layers"]:
            depth = int(layer.get("depth", 0))
            name = layer.get("name") or "(network)"
            item = QtWidgets.QTreeWidgetItem([name.split(".")[-1] if depth else name, str(layer.get("type")),
                                              _shape_text(layer.get("output_shape")),
                                              f"{int(layer.get('parameters', 0)):,}"])
            item.setData(0, 256, layer.get("name") or "")
            del parents[depth:]
            if parents:
                parents[-1].addChild(item)
            else:
                self.addTopLevelItem(item)
            parents.append(item)
        total = QtWidgets.QTreeWidgetItem(["total", "", "", f"{int(network.get('total_parameters', 0)):,}"])
        self.addTopLevelItem(total)
        self.expandAll()
        for column in range(4):
            self.resizeColumnToContents(column)


def quantiles_from_histogram(edges: Sequence[float], counts: Sequence[int],
                             quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> List[float]:
    """Quantiles of the values a histogram counted, interpolated within bins.

    Example:
        >>> from sigma_gui.panels.structure import quantiles_from_histogram
        >>> quantiles_from_histogram([0.0, 1.0, 2.0], [1, 1], [0.5])
        [1.0]
    """
    edges, counts = np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return [float("nan")] * len(quantiles)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / total
    return [float(np.interp(q, cumulative, edges)) for q in quantiles]


class HistogramPanel(QtWidgets.QWidget):
    """The newest histogram of a parameter's weights (or gradients), and its quantiles over time."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.connection = None
        layout = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        self.parameter = QtWidgets.QComboBox()
        self.parameter.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.kind = QtWidgets.QComboBox()
        self.kind.addItems(["weights", "gradients"])
        row.addWidget(QtWidgets.QLabel("parameter"))
        row.addWidget(self.parameter, 1)
        row.addWidget(self.kind)
        layout.addLayout(row)
        self.latest_plot = pg.PlotWidget(title="now")
        self.history_plot = pg.PlotWidget(title="5/25/50/75/95% over iterations")
        for plot in (self.latest_plot, self.history_plot):
            plot.setMinimumHeight(120)
            layout.addWidget(plot)
        self.bars: Optional[pg.BarGraphItem] = None
        self.lines = [self.history_plot.plot([], [], pen=pg.mkPen("#0072B2", width=w)) for w in (1, 1, 2, 1, 1)]
        self.parameter.currentTextChanged.connect(lambda _t: self._draw())
        self.kind.currentTextChanged.connect(lambda _t: self._draw())
        self._stamp = None

    def select_layer(self, layer: str) -> None:
        """Show a parameter of ``layer`` (a dotted module name from the structure panel), its weight if it has one."""
        names = [self.parameter.itemText(index) for index in range(self.parameter.count())]
        own = [name for name in names if not layer or name.startswith(layer + ".")]
        if own:
            weights = [name for name in own if name.endswith("weight")]
            self.parameter.setCurrentText((weights or own)[0])

    def refresh(self, connection: Optional[object]) -> None:
        self.connection = connection
        histograms: Dict = connection.state.histograms if connection is not None else {}
        names = sorted(histograms)
        if names != [self.parameter.itemText(i) for i in range(self.parameter.count())]:
            current = self.parameter.currentText()
            self.parameter.blockSignals(True)
            self.parameter.clear()
            self.parameter.addItems(names)
            if current in names:
                self.parameter.setCurrentText(current)
            self.parameter.blockSignals(False)
        stamp = (id(connection), connection.state.revision if connection is not None else None)
        if stamp != self._stamp:
            self._stamp = stamp
            self._draw()

    def history(self) -> List[Dict]:
        if self.connection is None:
            return []
        return self.connection.state.histograms.get(self.parameter.currentText(), [])

    def _draw(self) -> None:
        kind = self.kind.currentText()
        entries = [entry for entry in self.history() if kind in entry]
        if self.bars is not None:
            self.latest_plot.removeItem(self.bars)
            self.bars = None
        if not entries:
            for line in self.lines:
                line.setData([], [])
            self.latest_plot.setTitle("no histograms recorded" if not self.history() else f"no {kind} yet")
            self.latest_plot.setToolTip("runs in this process, and runs with sigma_gui.attach_remote, send "
                                        "histograms about once a second")
            return
        self.latest_plot.setTitle(f"{kind} at iteration {entries[-1].get('iteration')}")
        newest = entries[-1][kind]
        edges, counts = np.asarray(newest["edges"]), np.asarray(newest["counts"])
        self.bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts, brush="#56B4E9", pen=None)
        self.latest_plot.addItem(self.bars)
        iterations = np.array([entry.get("iteration") or 0 for entry in entries], dtype=np.float64)
        quantiles = np.array([quantiles_from_histogram(e[kind]["edges"], e[kind]["counts"]) for e in entries])
        for column, line in enumerate(self.lines):
            line.setData(iterations, quantiles[:, column])
