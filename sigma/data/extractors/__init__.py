"""Extractors: bytes in files -> numpy arrays (IDX, CSV, NPY/NPZ, HDF5, image folders, text).

Each reports malformed input as ``sigma.data.DataFormatError`` naming the
file, the offset or line, and what was expected. None loads pickles.

Example:
    >>> from sigma.data import extractors
    >>> callable(extractors.read_idx) and callable(extractors.read_csv)
    True
"""
from sigma.data.extractors.csv_files import csv_sections, parse_csv, read_csv
from sigma.data.extractors.hdf5_files import read_hdf5
from sigma.data.extractors.idx import encode_idx, parse_idx, read_idx, write_idx
from sigma.data.extractors.image_folder import read_image_folder
from sigma.data.extractors.numpy_files import read_npy, read_npz
from sigma.data.extractors.text import Vocabulary, next_token_windows, read_text, tokenize

__all__ = ["csv_sections", "parse_csv", "read_csv", "read_hdf5", "encode_idx", "parse_idx", "read_idx",
           "write_idx", "read_image_folder", "read_npy", "read_npz", "Vocabulary", "next_token_windows",
           "read_text", "tokenize"]
