"""``sigma.data``: files become named sections (``inputs``, ``targets``) in batches on a device.

Data flows source -> extractor -> preprocessors -> dataset -> iterator:

* sources (:mod:`~sigma.data.sources`, :mod:`~sigma.data.search_path`): local files, checked
  downloads into the user cache, gzip / zip / tar;
* extractors (:mod:`~sigma.data.extractors`): IDX, CSV, NPY/NPZ, HDF5, image folders, text;
* preprocessors (:mod:`~sigma.data.preprocessing`): normalise, one-hot, shuffle, cast,
  reshape, permute, random crop, horizontal flip, your own functions;
* datasets (:mod:`~sigma.data.datasets`, :mod:`~sigma.data.block_cache`, :mod:`~sigma.data.splits`):
  in memory or block-cached from HDF5; subsets, splits, concatenation, relabelling;
* iterators (:mod:`~sigma.data.iterators`): minibatches, an infinite stream, the whole set,
  with background prefetch; batches are dicts of ``sigma.Tensor``.

Example:
    >>> import sigma.data
    >>> train = sigma.data.load("xor", repeats=8)
    >>> batches = sigma.data.MinibatchIterator(train, batch_size=16, seed=0)
    >>> batch = next(iter(batches))
    >>> batch["inputs"].shape, batch["targets"].dtype
    ((16, 2), dtype('int64'))
"""
from sigma.data.errors import ChecksumError, DataError, DataFormatError, DatasetNotFoundError, DownloadError
from sigma.data.search_path import cache_dir
from sigma.data import search_path
from sigma.data.sources import download, unpack
from sigma.data.datasets import Concatenation, Dataset, InMemoryDataset, Relabelled, Subset
from sigma.data.block_cache import BlockCachedDataset, HDF5Writer, write_hdf5
from sigma.data.splits import split
from sigma.data.preprocessing import (Cast, HorizontalFlip, Normalise, OneHot, Permute, Pipeline, Preprocessor,
                                      RandomCrop, Reshape, Shuffle, UserFunction)
from sigma.data.iterators import InfiniteStream, MinibatchIterator, WholeSetIterator
from sigma.data.readers import from_csv, from_hdf5, from_idx, from_image_folder, from_npz, from_text
from sigma.data.registry import available, load, register
from sigma.data import extractors

__all__ = [
    "ChecksumError", "DataError", "DataFormatError", "DatasetNotFoundError", "DownloadError",
    "cache_dir", "search_path", "download", "unpack",
    "Concatenation", "Dataset", "InMemoryDataset", "Relabelled", "Subset",
    "BlockCachedDataset", "HDF5Writer", "write_hdf5", "split",
    "Cast", "HorizontalFlip", "Normalise", "OneHot", "Permute", "Pipeline", "Preprocessor", "RandomCrop",
    "Reshape", "Shuffle", "UserFunction",
    "InfiniteStream", "MinibatchIterator", "WholeSetIterator",
    "from_csv", "from_hdf5", "from_idx", "from_image_folder", "from_npz", "from_text",
    "available", "load", "register", "extractors",
]
