"""Image folders: one subfolder per class, PNG/JPEG/... files inside, read with Pillow.

``root/cat/1.png, root/dog/7.jpg`` gives images of shape (N, C, H, W)
(uint8, channels first as ``sigma.conv2d`` expects), int64 labels and the
class names in sorted order. Needs Pillow (``pip install 'sigma[images]'``).

Example:
    >>> import numpy as np, pathlib, tempfile
    >>> from PIL import Image
    >>> from sigma.data.extractors.image_folder import read_image_folder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name, value in [("a", 0), ("b", 255)]:
    ...     (root / name).mkdir()
    ...     Image.fromarray(np.full((4, 5), value, np.uint8)).save(root / name / "x.png")
    >>> images, labels, classes = read_image_folder(root)
    >>> images.shape, labels.tolist(), classes
    ((2, 1, 4, 5), [0, 1], ['a', 'b'])
"""
from __future__ import annotations

import os
import pathlib
from typing import List, Optional, Sequence, Tuple

import numpy as np

from sigma.data.errors import DataFormatError

GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
MODES = ("L", "RGB", "RGBA")


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image folders needs Pillow: pip install 'sigma[images]' "
                          "(or pip install pillow)") from None
    return Image


def read_image_folder(root: "str | os.PathLike", *, size: Optional[Tuple[int, int]] = None,
                      mode: Optional[str] = None, classes: Optional[Sequence[str]] = None,
                      on_error: str = "raise") -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Read every image under ``root/<class>/`` into ``(images, labels, class_names)``.

    Args:
        size: ``(height, width)`` to resize every image to; without it all
            images must already share one size.
        mode: ``"L"`` (grayscale), ``"RGB"`` or ``"RGBA"``; ``None`` takes
            ``"L"`` if the first image is grayscale, else ``"RGB"``.
        classes: the class folders to read, in label order (default: all, sorted).
        on_error: ``"raise"`` (default) for a file Pillow cannot read, or ``"skip"`` to leave it out.

    Hidden files and folders (names starting with ``.``) and files directly
    in ``root`` are ignored. Raises ``DataFormatError`` naming the file for
    anything that is not a readable image, and for mismatched sizes.
    """
    image_module = _pillow()
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} or None, got {mode!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"size must be (height, width) of positive integers, got {size}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    class_names = list(classes) if classes is not None else found
    absent = [name for name in class_names if name not in found]
    if absent:
        raise FileNotFoundError(f"{root}: no class folders {absent}; found {found}")
    if not class_names:
        raise DataFormatError(f"{root}: no class folders: expected one subfolder of images per class")
    images: List[np.ndarray] = []
    labels: List[int] = []
    first_file = None
    for label, name in enumerate(class_names):
        files = sorted(p for p in (root / name).rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
        count = 0
        for file in files:
            try:
                with image_module.open(file) as image:
                    image.load()
                    if mode is None:
                        mode = "L" if image.mode in GRAYSCALE_MODES else "RGB"
                    picture = image.convert(mode) if image.mode != mode else image.copy()
            except (image_module.UnidentifiedImageError, OSError, SyntaxError, ValueError,
                    image_module.DecompressionBombError) as error:
                if on_error == "skip":
                    continue
                raise DataFormatError(f"{file}: not a readable image ({error}); remove it, or pass "
                                      f"on_error='skip'") from None
            if size is not None and picture.size != (size[1], size[0]):
                picture = picture.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
            array = np.asarray(picture, dtype=np.uint8)
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            if images and array.shape != images[0].shape:
                raise DataFormatError(f"{file}: image of {array.shape[1]}x{array.shape[2]} pixels (height x width),"
                                      f" but {first_file} has {images[0].shape[1]}x{images[0].shape[2]}; pass "
                                      f"size=(height, width) to resize them all")
            first_file = first_file or file
            images.append(array)
            labels.append(label)
            count += 1
        if count == 0:
            raise DataFormatError(f"{root / name}: class folder holds no readable images")
    return np.stack(images), np.array(labels, dtype=np.int64), class_names
