"""NPY/NPZ, HDF5, image folders and text."""
import h5py
import numpy as np
import pytest

from sigma.data import from_text
from sigma.data.errors import DataFormatError
from sigma.data.extractors import (Vocabulary, next_token_windows, read_hdf5, read_image_folder, read_npy,
                                   read_npz, read_text, tokenize)

Image = pytest.importorskip("PIL.Image", reason="Pillow is the 'images' extra: pip install 'sigma[images]'")


# -- numpy files -----------------------------------------------------------------------
def test_npy_and_npz_round_trip_with_section_renaming(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6).reshape(2, 3))
    assert read_npy(tmp_path / "a.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert read_npy(tmp_path / "a.npy", memory_map=True)[1, 2] == 5
    np.savez_compressed(tmp_path / "d.npz", x_train=np.ones((3, 2)), y_train=np.array([1, 2, 3]))
    sections = read_npz(tmp_path / "d.npz", {"inputs": "x_train", "targets": "y_train"})
    assert list(sections) == ["inputs", "targets"] and sections["targets"].tolist() == [1, 2, 3]
    with pytest.raises(KeyError, match=r"no arrays \['z'\]; the file holds \['x_train', 'y_train'\]"):
        read_npz(tmp_path / "d.npz", ["z"])


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="holds Python objects \\(a pickle\\); Sigma never loads pickles"):
        read_npy(tmp_path / "objects.npy")
    np.savez(tmp_path / "objects.npz", ok=np.zeros(2), bad=np.array([None, 1], dtype=object))
    assert read_npz(tmp_path / "objects.npz", ["ok"])["ok"].tolist() == [0.0, 0.0]
    with pytest.raises(DataFormatError, match="array 'bad': the array holds Python objects"):
        read_npz(tmp_path / "objects.npz")


def test_corrupt_numpy_files(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros(1000))
    blob = (tmp_path / "big.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(blob[:500])
    with pytest.raises(DataFormatError, match=r"cut\.npy"):
        read_npy(tmp_path / "cut.npy")
    (tmp_path / "text.npy").write_text("hello there")
    with pytest.raises(DataFormatError, match=r"not an NPY file: expected the bytes b'\\x93NUMPY' at offset 0"):
        read_npy(tmp_path / "text.npy")
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataFormatError, match=r"x\.npz: not a readable NPZ file"):
        read_npz(tmp_path / "x.npz")


# -- HDF5 ------------------------------------------------------------------------------
def test_hdf5_reads_named_datasets(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["train/images"] = np.arange(12, dtype=np.uint8).reshape(3, 4)
        f["train/labels"] = np.array([0, 1, 0])
    everything = read_hdf5(tmp_path / "d.h5")
    assert sorted(everything) == ["train/images", "train/labels"]
    picked = read_hdf5(tmp_path / "d.h5", {"inputs": "train/images"})
    assert picked["inputs"].dtype == np.uint8 and picked["inputs"].shape == (3, 4)
    with pytest.raises(KeyError, match="no datasets \\['test/x'\\]"):
        read_hdf5(tmp_path / "d.h5", ["test/x"])
    (tmp_path / "fake.h5").write_text("not hdf5")
    with pytest.raises(DataFormatError, match=r"fake\.h5: not a readable HDF5 file"):
        read_hdf5(tmp_path / "fake.h5")


# -- image folders -------------------------------------------------------------------------
def _make_folder(root, size=(6, 5), mode="L", per_class=2):
    rng = np.random.default_rng(0)
    pixels = {}
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = size if mode == "L" else size + (3,)
            array = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(array, mode).save(root / name / f"{i}.png")
            pixels[(name, i)] = array
    return pixels


def test_image_folder_reads_classes_in_sorted_order_channels_first(tmp_path):
    pixels = _make_folder(tmp_path, mode="RGB")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "README.txt").write_text("files beside the class folders are ignored")
    images, labels, classes = read_image_folder(tmp_path)
    assert classes == ["cat", "dog"] and labels.tolist() == [0, 0, 1, 1]
    assert images.shape == (4, 3, 6, 5) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[2], pixels[("dog", 0)].transpose(2, 0, 1))


def test_image_folder_grayscale_jpeg_resize_and_mode(tmp_path):
    _make_folder(tmp_path, size=(8, 8))
    Image.fromarray(np.full((16, 12), 200, np.uint8)).save(tmp_path / "dog" / "big.jpg", quality=95)
    with pytest.raises(DataFormatError, match=r"big\.jpg: image of 16x12 pixels .* has 8x8; pass size="):
        read_image_folder(tmp_path)
    images, labels, _ = read_image_folder(tmp_path, size=(8, 8))
    assert images.shape == (5, 1, 8, 8) and labels.tolist() == [0, 0, 1, 1, 1]
    assert abs(int(images[4].mean()) - 200) <= 2  # dog/big.jpg sorts after dog/1.png
    assert read_image_folder(tmp_path, size=(4, 4), mode="RGB")[0].shape == (5, 3, 4, 4)


def test_non_image_file_in_an_image_folder_is_named(tmp_path):
    _make_folder(tmp_path)
    (tmp_path / "dog" / "notes.txt").write_text("not a picture")
    with pytest.raises(DataFormatError, match=r"dog/notes\.txt: not a readable image .*on_error='skip'"):
        read_image_folder(tmp_path)
    images, labels, _ = read_image_folder(tmp_path, on_error="skip")
    assert len(images) == 4


def test_truncated_png_and_empty_class_folder(tmp_path):
    _make_folder(tmp_path, size=(64, 64))
    blob = (tmp_path / "cat" / "0.png").read_bytes()
    (tmp_path / "cat" / "0.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataFormatError, match=r"cat/0\.png: not a readable image"):
        read_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="empty: class folder holds no readable images"):
        read_image_folder(tmp_path, on_error="skip")
    with pytest.raises(DataFormatError, match="no class folders"):
        read_image_folder(tmp_path / "empty")


def test_folder_of_pngs_to_normalised_shuffled_batches_in_three_lines(tmp_path):
    import sigma.data
    _make_folder(tmp_path, per_class=5)
    pictures = sigma.data.from_image_folder(tmp_path)
    batches = sigma.data.MinibatchIterator(pictures, batch_size=4, seed=1,
                                           transform=sigma.data.Normalise(mean=127.5, std=127.5))
    seen = [batch for batch in batches]
    assert [b["inputs"].shape for b in seen] == [(4, 1, 6, 5), (4, 1, 6, 5), (2, 1, 6, 5)]
    inputs = np.concatenate([b["inputs"].numpy() for b in seen])
    assert inputs.dtype == np.float32 and -1.0 <= inputs.min() and inputs.max() <= 1.0
    assert sorted(np.concatenate([b["targets"].numpy() for b in seen]).tolist()) == [0] * 5 + [1] * 5


# -- text ------------------------------------------------------------------------------------
def test_tokenize_and_vocabulary():
    assert tokenize("Hi, there!", level="word", lowercase=True) == ["hi", ",", "there", "!"]
    assert tokenize("ab c") == ["a", "b", " ", "c"]
    vocabulary = Vocabulary.build(["b", "a", "b", "c", "c", "c"], max_size=3)
    assert vocabulary.tokens == ["<unk>", "c", "b"]
    assert vocabulary.encode(["a", "b"]).tolist() == [0, 2]
    with pytest.raises(IndexError, match="token id 7 is outside the vocabulary of 3 tokens"):
        vocabulary.decode([7])
    with pytest.raises(ValueError, match="level must be one of"):
        tokenize("x", level="sentence")


def test_read_text_and_windows(tmp_path):
    (tmp_path / "t.txt").write_text("abcabcab")
    ids, vocabulary = read_text(tmp_path / "t.txt")
    assert "".join(vocabulary.decode(ids)) == "abcabcab"
    windows = next_token_windows(ids, length=3, stride=2)
    assert windows["inputs"].shape == (3, 3)
    np.testing.assert_array_equal(windows["targets"][:, :-1], windows["inputs"][:, 1:])
    dataset = from_text(tmp_path / "t.txt", length=2)
    assert len(dataset) == 3 and dataset.vocabulary is not None
    (tmp_path / "bad.txt").write_bytes(b"ok\nok\n\xff")
    with pytest.raises(DataFormatError, match=r"bad\.txt, line 3: byte 6 is not valid utf-8"):
        read_text(tmp_path / "bad.txt")
    with pytest.raises(DataFormatError, match="2 tokens are too few for one window of 4"):
        next_token_windows(np.arange(2), length=4)
