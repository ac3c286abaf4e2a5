"""GUI tests run headless on Qt's offscreen platform. The window tests skip, with the reason, where PyQt6,
pyqtgraph or pytest-qt are missing; the connection-layer tests need none of them."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
