"""Draws docs/images/architecture.svg: how data flows through one training step, and which package holds each part.

    python docs/images/make_architecture_diagram.py           # rewrite architecture.svg beside this script
    python docs/images/make_architecture_diagram.py --check   # exit 1 if the committed file is out of date

The SVG is written as plain text from the tables below (no drawing library),
so the same tables always give the same bytes; tests/docs/test_docs_architecture.py
checks that the committed file is what this script draws now and that every
path named in a box exists.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import List, NamedTuple, Tuple
from xml.sax.saxutils import escape

HERE = pathlib.Path(__file__).resolve().parent
OUTPUT = HERE / "architecture.svg"


class Box(NamedTuple):
    title: str
    does: str
    paths: Tuple[str, ...]  # relative to the repository root; a trailing "/" marks a package folder
    layer: str


# The flow of issue 10's architecture page, in order. Each arrow leads from one box to the next.
BOXES = (
    Box("sources", "files, URLs, archives", ("sigma/data/sources.py",), "data"),
    Box("extractors", "IDX, CSV, NPY, HDF5, images, text", ("sigma/data/extractors/",), "data"),
    Box("preprocessors", "normalise, one-hot, augment", ("sigma/data/preprocessing.py",), "data"),
    Box("datasets", "sections of samples, splits", ("sigma/data/datasets.py",), "data"),
    Box("iterators", "seeded shuffled minibatches", ("sigma/data/iterators.py",), "data"),
    Box("trainer", "the loop: steps, commands, stop", ("sigma/training/trainer.py",), "training"),
    Box("operator", "hands out shards, merges results", ("sigma/training/operators.py",), "training"),
    Box("workers", "threads or MPI ranks, all-reduce", ("sigma/training/operators.py", "sigma/distributed/"),
        "training"),
    Box("network on backend", "forward and backward", ("sigma/nn/", "backends/"), "compute"),
    Box("optimiser", "update rule or forward-only search", ("sigma/optim/",), "compute"),
    Box("hooks", "evaluate, stop early, checkpoint", ("sigma/training/hooks/", "sigma/io/"), "reporting"),
    Box("monitors", "progress bar, logs, run log, GUI", ("sigma/monitors/", "sigma_gui/"), "reporting"),
)

# What travels along the arrow from BOXES[i] to BOXES[i + 1].
CARRIES = ("bytes", "arrays", "arrays", "samples", "batch", "batch", "shards", "shard", "gradients",
           "observation", "metrics")

# Fill and outline of each layer's boxes, and the legend's words for it.
LAYERS = {
    "data": ("#e3eefb", "#3d6fb0", "data pipeline"),
    "training": ("#fdf0d8", "#b27716", "training loop"),
    "compute": ("#e4f4e4", "#3f8a3f", "arithmetic"),
    "reporting": ("#efe6f7", "#7650a0", "reporting"),
}

COLUMNS = 4
BOX_WIDTH, BOX_HEIGHT = 236, 96
COLUMN_GAP, ROW_GAP = 92, 62
MARGIN, TITLE_HEIGHT, LEGEND_HEIGHT = 24, 44, 40
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def box_position(index: int) -> Tuple[int, int]:
    """Top-left corner of box ``index``: rows of four that snake (left to right, then right to left, ...)."""
    row, column = divmod(index, COLUMNS)
    if row % 2:
        column = COLUMNS - 1 - column
    x = MARGIN + column * (BOX_WIDTH + COLUMN_GAP)
    y = MARGIN + TITLE_HEIGHT + row * (BOX_HEIGHT + ROW_GAP)
    return x, y


def canvas_size() -> Tuple[int, int]:
    rows = -(-len(BOXES) // COLUMNS)
    width = 2 * MARGIN + COLUMNS * BOX_WIDTH + (COLUMNS - 1) * COLUMN_GAP
    height = 2 * MARGIN + TITLE_HEIGHT + rows * BOX_HEIGHT + (rows - 1) * ROW_GAP + LEGEND_HEIGHT
    return width, height


def text(x: float, y: float, content: str, size: float, anchor: str = "middle", family: str = SANS,
         weight: str = "normal", colour: str = "#1d1d1d") -> str:
    return (f'<text x="{x:g}" y="{y:g}" font-family="{family}" font-size="{size:g}" font-weight="{weight}" '
            f'text-anchor="{anchor}" fill="{colour}">{escape(content)}</text>')


def draw_box(index: int, box: Box) -> List[str]:
    x, y = box_position(index)
    fill, outline, _ = LAYERS[box.layer]
    centre = x + BOX_WIDTH / 2
    parts = [f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="9" fill="{fill}" '
             f'stroke="{outline}" stroke-width="1.6"/>',
             text(centre, y + 24, box.title, 16, weight="bold"),
             text(centre, y + 44, box.does, 12, colour="#3a3a3a")]
    for line, path in enumerate(box.paths):
        parts.append(text(centre, y + 66 + 16 * line, path, 12, family=MONO, colour=outline))
    return parts


def draw_arrow(index: int, label: str) -> List[str]:
    """The arrow from box ``index`` to the next: sideways within a row, downwards at a row's end."""
    (x1, y1), (x2, y2) = box_position(index), box_position(index + 1)
    if y1 == y2:
        start, end = (x1 + BOX_WIDTH, x2) if x2 > x1 else (x1, x2 + BOX_WIDTH)
        middle_y = y1 + BOX_HEIGHT / 2
        line = (start, middle_y, end + (-4 if x2 > x1 else 4), middle_y)
        label_at = ((start + end) / 2, middle_y - 8, "middle")
    else:
        middle_x = x1 + BOX_WIDTH / 2
        line = (middle_x, y1 + BOX_HEIGHT, middle_x, y2 - 4)
        label_at = (middle_x + 10, (y1 + BOX_HEIGHT + y2) / 2 + 4, "start")
    return [f'<line x1="{line[0]:g}" y1="{line[1]:g}" x2="{line[2]:g}" y2="{line[3]:g}" stroke="#444" '
            f'stroke-width="1.8" marker-end="url(#arrowhead)"/>',
            text(label_at[0], label_at[1], label, 12, anchor=label_at[2], colour="#444", weight="bold")]


def draw_legend(y: float) -> List[str]:
    parts, x = [], MARGIN
    for fill, outline, words in LAYERS.values():
        parts.append(f'<rect x="{x}" y="{y - 12}" width="16" height="16" rx="3" fill="{fill}" stroke="{outline}" '
                     f'stroke-width="1.4"/>')
        parts.append(text(x + 22, y + 1, words, 13, anchor="start"))
        x += 30 + 8 * len(words) + 24
    parts.append(text(canvas_size()[0] - MARGIN, y + 1, "in each box: what it does, and the package that holds it",
                      13, anchor="end", colour="#555"))
    return parts


def render() -> str:
    """The diagram as SVG text."""
    if len(CARRIES) != len(BOXES) - 1:
        raise ValueError(f"{len(BOXES)} boxes need {len(BOXES) - 1} arrow labels, CARRIES has {len(CARRIES)}")
    width, height = canvas_size()
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">',
             "<title>Sigma: how data flows through one training step, and the package that holds each part</title>",
             '<defs><marker id="arrowhead" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto" '
             'markerUnits="userSpaceOnUse"><path d="M0,0 L10,4 L0,8 z" fill="#444"/></marker></defs>',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
             text(MARGIN, MARGIN + 18, "How data flows through one training step", 19, anchor="start",
                  weight="bold")]
    for index, box in enumerate(BOXES):
        parts.extend(draw_box(index, box))
    for index, label in enumerate(CARRIES):
        parts.extend(draw_arrow(index, label))
    parts.extend(draw_legend(height - MARGIN - 8))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args(argv)
    drawing = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != drawing:
            print(f"{args.output} is out of date: run python {pathlib.Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(drawing)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
