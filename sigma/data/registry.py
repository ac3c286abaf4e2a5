"""Built-in datasets by name: ``mnist``, ``fashion_mnist``, ``iris``, ``xor``; and a way to add more.

``load("mnist", split="train")`` looks for the files on the data search
path (``SIGMA_DATA``, the user cache, ``/usr/share/datasets``; see
:mod:`sigma.data.search_path`), verifies their checksums, and downloads
them into the user cache when they are nowhere to be found (pass
``download=False`` to forbid that).

Every file's content is checked against a SHA-256 of its uncompressed
bytes, so a file found compressed or not, under any folder, is trusted
only if it is the published data. MNIST's checksums are those published
for the four ``.gz`` files (MD5 and SHA-256); the content checksums were
computed from files matching them. Fashion-MNIST's published MD5s are of
the upstream ``.gz`` files, whose gzip headers differ from the copies
Debian's ``dataset-fashion-mnist`` ships (same compressed data, no stored
file name, a different time stamp), so they could not be checked here:
Fashion-MNIST is verified by its content checksums only, taken from the
Debian copies.

Example:
    >>> import sigma.data
    >>> iris = sigma.data.load("iris")
    >>> len(iris), iris.classes
    (150, ['setosa', 'versicolor', 'virginica'])
    >>> sorted(sigma.data.available())[:3]
    ['fashion_mnist', 'iris', 'mnist']
"""
from __future__ import annotations

import dataclasses
import hashlib
import pathlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sigma.data import search_path, sources
from sigma.data.datasets import Dataset, InMemoryDataset
from sigma.data.errors import ChecksumError, DataError, DataFormatError, DatasetNotFoundError
from sigma.data.extractors.csv_files import csv_sections, read_csv
from sigma.data.extractors.idx import parse_idx

BUNDLED = pathlib.Path(__file__).resolve().parent / "bundled"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, checksums, and where it is published."""

    name: str
    content_sha256: str
    md5: Optional[str] = None
    sha256: Optional[str] = None


@dataclasses.dataclass
class DatasetEntry:
    """A registered dataset: ``loader(split, download=..., **options) -> Dataset``."""

    name: str
    loader: Callable[..., Dataset]
    splits: Tuple[str, ...]
    description: str


_registry: Dict[str, DatasetEntry] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register(name: str, loader: Callable[..., Dataset], splits: Sequence[str], description: str = "") -> None:
    """Make ``load(name, split)`` call ``loader(split, download=download, **options)``.

    Example:
        >>> import numpy as np, sigma.data
        >>> sigma.data.register("ones", lambda split, download=True: sigma.data.InMemoryDataset(
        ...     inputs=np.ones((3, 2))), splits=["all"])
        >>> len(sigma.data.load("ones"))
        3
    """
    if not splits:
        raise ValueError(f"dataset {name!r} needs at least one split")
    _registry[_key(name)] = DatasetEntry(_key(name), loader, tuple(splits), description)


def available() -> List[str]:
    """Names of the registered datasets.

    Example:
        >>> import sigma.data
        >>> "mnist" in sigma.data.available()
        True
    """
    return sorted(_registry)


def describe(name: str) -> DatasetEntry:
    """The registry entry of ``name`` (splits, description).

    Example:
        >>> from sigma.data.registry import describe
        >>> describe("fashion-mnist").splits
        ('train', 'test')
    """
    key = _key(name)
    if key not in _registry:
        raise ValueError(f"no dataset called {name!r}; known datasets: {available()}")
    return _registry[key]


def load(name: str, split: Optional[str] = None, *, download: bool = True, **options: Any) -> Dataset:
    """The dataset ``name``, split ``split`` (default: its first, e.g. ``"train"``), with ``inputs`` and ``targets``.

    Raises ``ValueError`` for an unknown name or split, ``DatasetNotFoundError``
    when files are missing and cannot be downloaded, ``ChecksumError`` for a
    file whose content is not the published one.

    Example:
        >>> import sigma.data
        >>> sigma.data.load("xor")["targets"].tolist()
        [0, 1, 1, 0]
    """
    entry = describe(name)
    split = entry.splits[0] if split is None else split
    if split not in entry.splits:
        raise ValueError(f"dataset {entry.name!r} has no split {split!r}; its splits are {list(entry.splits)}")
    return entry.loader(split, download=download, **options)


# -- finding and verifying files ---------------------------------------------------
def fetch(folders: Sequence[str], file: RemoteFile, base_urls: Sequence[str], download: bool = True) -> bytes:
    """The verified, uncompressed content of ``file``: from the search path, else downloaded.

    Looks for ``<folder>/<name>`` and ``<folder>/<name without .gz>`` in each
    search-path folder (``SIGMA_DATA`` first); downloads into
    ``<user cache>/<folders[0]>/<name>`` otherwise.
    """
    names = [f"{folder}/{file.name}" for folder in folders]
    if file.name.endswith(".gz"):
        names += [f"{folder}/{file.name[:-3]}" for folder in folders]
    found = search_path.find_any(names)
    if found is not None:
        return _verified_content(found, file)
    if not download:
        raise DatasetNotFoundError(f"{file.name} is not in any of {folders} on the data search path:\n"
                                   f"{search_path.describe()}\n(download=False, so nothing was downloaded)")
    destination = search_path.cache_dir() / folders[0] / file.name
    failures = []
    for base in base_urls:
        try:
            path = sources.download(base + file.name, destination, md5=file.md5, sha256=file.sha256,
                                    validate=lambda p: _verified_content(p, file))
            return _verified_content(path, file)
        except (DataError, OSError) as error:
            failures.append(f"{base}{file.name}: {error}")
    raise DatasetNotFoundError(f"{file.name} is not in any of {folders} on the data search path:\n"
                               f"{search_path.describe()}\nand could not be downloaded:\n  " + "\n  ".join(failures))


def _verified_content(path: pathlib.Path, file: RemoteFile) -> bytes:
    content = sources.read_bytes(path)
    actual = hashlib.sha256(content).hexdigest()
    if actual != file.content_sha256:
        raise ChecksumError(f"{path}: the content's sha256 is {actual}, expected {file.content_sha256} "
                            f"(the published {file.name}); the file is damaged or another one: delete or replace it")
    return content


# -- the MNIST family ----------------------------------------------------------------
MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {
    "train": (RemoteFile("train-images-idx3-ubyte.gz",
                         "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                         md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
                         sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
              RemoteFile("train-labels-idx1-ubyte.gz",
                         "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                         md5="d53e105ee54ea40749a09fcbcd1e9432",
                         sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")),
    "test": (RemoteFile("t10k-images-idx3-ubyte.gz",
                        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                        md5="9fb629c4189551a2d022fa330f9573f3",
                        sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
             RemoteFile("t10k-labels-idx1-ubyte.gz",
                        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                        md5="ec29112dd5afa0611ce80d1b7f02629c",
                        sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")),
}
MNIST_FOLDERS = ("mnist", "MNIST/raw", "MNIST")
MNIST_CLASSES = [str(digit) for digit in range(10)]

FASHION_MNIST_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_MNIST_FILES = {
    "train": (RemoteFile("train-images-idx3-ubyte.gz",
                         "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
              RemoteFile("train-labels-idx1-ubyte.gz",
                         "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9")),
    "test": (RemoteFile("t10k-images-idx3-ubyte.gz",
                        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
             RemoteFile("t10k-labels-idx1-ubyte.gz",
                        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34")),
}
FASHION_MNIST_FOLDERS = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]


def _idx_pair(name: str, split: str, folders, files, urls, classes, download: bool) -> InMemoryDataset:
    image_file, label_file = files[split]
    images = parse_idx(fetch(folders, image_file, urls, download), source=image_file.name, rank=3)
    labels = parse_idx(fetch(folders, label_file, urls, download), source=label_file.name, rank=1)
    if len(images) != len(labels):
        raise DataFormatError(f"{name} {split}: {len(images)} images but {len(labels)} labels")
    return InMemoryDataset(inputs=images, targets=labels.astype(np.int64), classes=classes, name=f"{name}/{split}")


def _load_mnist(split: str, download: bool = True) -> InMemoryDataset:
    return _idx_pair("mnist", split, MNIST_FOLDERS, MNIST_FILES, MNIST_URLS, MNIST_CLASSES, download)


def _load_fashion_mnist(split: str, download: bool = True) -> InMemoryDataset:
    return _idx_pair("fashion_mnist", split, FASHION_MNIST_FOLDERS, FASHION_MNIST_FILES, FASHION_MNIST_URLS,
                     FASHION_MNIST_CLASSES, download)


# -- small tables ----------------------------------------------------------------------
IRIS_SHA256 = "9cc1c345c71bcc9b486b74cbf6063fa66f4bb5e0f603a4b3c3471ec2e5e8e355"


def _load_iris(split: str, download: bool = True) -> InMemoryDataset:
    path = BUNDLED / "iris.csv"
    sources.verify(path, sha256=IRIS_SHA256, what=f"bundled {path}")
    sections, classes = csv_sections(read_csv(path), targets="species", source=str(path))
    return InMemoryDataset(sections, classes=classes, name="iris")


def _load_xor(split: str, download: bool = True, repeats: int = 1, noise: float = 0.0,
              seed: int = 0) -> InMemoryDataset:
    """The four XOR points (``repeats`` copies, with Gaussian ``noise`` added to the inputs if asked)."""
    if repeats < 1 or noise < 0:
        raise ValueError(f"xor needs repeats >= 1 and noise >= 0, got repeats={repeats}, noise={noise}")
    inputs = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32), (repeats, 1))
    targets = np.tile(np.array([0, 1, 1, 0], np.int64), repeats)
    if noise:
        inputs = inputs + np.random.default_rng(seed).normal(0.0, noise, inputs.shape).astype(np.float32)
    return InMemoryDataset(inputs=inputs, targets=targets, classes=["0", "1"], name="xor")


register("mnist", _load_mnist, ("train", "test"),
         "handwritten digits 0-9: 60,000 + 10,000 grayscale 28x28 images (LeCun, Cortes, Burges)")
register("fashion_mnist", _load_fashion_mnist, ("train", "test"),
         "Zalando's article images in 10 classes: 60,000 + 10,000 grayscale 28x28 images (Xiao, Rasul, Vollgraf 2017)")
register("iris", _load_iris, ("all",), "Fisher's iris flowers: 150 samples, 4 measurements, 3 species (bundled)")
register("xor", _load_xor, ("all",), "the four points of exclusive-or, a first test for a hidden layer")
