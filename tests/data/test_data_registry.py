"""Built-in datasets by name: MNIST and Fashion-MNIST through the search path, iris, xor."""
import gzip

import numpy as np
import pytest

import sigma.data
from sigma.data import registry, search_path
from sigma.data.errors import ChecksumError, DatasetNotFoundError


def _mnist_folder():
    return search_path.find_any([f"{folder}/train-labels-idx1-ubyte.gz" for folder in registry.MNIST_FOLDERS])


def _fashion_folder():
    return search_path.find_any([f"{folder}/train-labels-idx1-ubyte.gz" for folder in registry.FASHION_MNIST_FOLDERS])


needs_mnist = pytest.mark.skipif(_mnist_folder() is None,
                                 reason="MNIST files are on no folder of the data search path (set SIGMA_DATA)")
needs_fashion = pytest.mark.skipif(_fashion_folder() is None,
                                   reason="Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")


@needs_mnist
def test_mnist_train_and_test_from_the_search_path():
    train = sigma.data.load("mnist", split="train", download=False)
    test = sigma.data.load("mnist", split="test", download=False)
    assert train["inputs"].shape == (60000, 28, 28) and train["inputs"].dtype == np.uint8
    assert test["inputs"].shape == (10000, 28, 28) and train.targets.dtype == np.int64
    assert train["targets"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test["targets"][:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(train.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert train.classes == [str(d) for d in range(10)] and train.name == "mnist/train"


@needs_mnist
def test_mnist_found_uncompressed_and_a_damaged_copy_is_refused(tmp_path, monkeypatch):
    source = _mnist_folder().parent
    folder = tmp_path / "mine" / "mnist"
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(gzip.decompress((source / f"{name}.gz").read_bytes()))
    monkeypatch.setenv("SIGMA_DATA", str(tmp_path / "mine"))
    monkeypatch.setenv("SIGMA_CACHE", str(tmp_path / "cache"))
    assert len(sigma.data.load("mnist", split="test", download=False)) == 10000
    blob = bytearray((folder / "t10k-labels-idx1-ubyte").read_bytes())
    blob[100] ^= 1
    (folder / "t10k-labels-idx1-ubyte").write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte: the content's sha256 is .* expected ff7bcfd4"):
        sigma.data.load("mnist", split="test", download=False)


def test_missing_files_without_download_list_the_search_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGMA_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("SIGMA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(search_path, "SYSTEM_FOLDERS", ())
    with pytest.raises(DatasetNotFoundError) as error:
        sigma.data.load("mnist", download=False)
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz is not in any of" in message and str(tmp_path / "nothing") in message


@needs_fashion
def test_fashion_mnist_from_the_debian_package():
    train = sigma.data.load("fashion-mnist", download=False)
    test = sigma.data.load("fashion_mnist", split="test", download=False)
    assert train["inputs"].shape == (60000, 28, 28) and test["inputs"].shape == (10000, 28, 28)
    assert np.bincount(train.targets).tolist() == [6000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert train.classes[3] == "Dress" and test.classes[int(test.targets[0])] == "Ankle boot"


@needs_mnist
@needs_fashion
def test_digits_and_dresses_in_one_stream_with_a_new_label():
    digits = sigma.data.load("mnist", split="test", download=False)
    dresses = sigma.data.load("fashion_mnist", split="test", download=False).where(targets=3).relabel(10)
    mixed = digits.concat(dresses)
    assert len(mixed) == 11000 and mixed.classes is None
    batch = next(iter(sigma.data.MinibatchIterator(mixed, batch_size=2000, seed=0)))
    labels = batch["targets"].numpy()
    assert set(np.unique(labels).tolist()) == set(range(11))
    assert 100 < (labels == 10).sum() < 260


def test_iris_is_bundled_with_fishers_values():
    iris = sigma.data.load("iris")
    assert iris["inputs"].shape == (150, 4) and iris["inputs"].dtype == np.float32
    assert np.bincount(iris.targets).tolist() == [50, 50, 50]
    np.testing.assert_allclose(iris.inputs.mean(axis=0), [5.8433, 3.0573, 3.7580, 1.1993], atol=1e-4)
    assert iris[34]["inputs"].tolist() == pytest.approx([4.9, 3.1, 1.5, 0.2])
    assert iris[37]["inputs"].tolist() == pytest.approx([4.9, 3.6, 1.4, 0.1])


def test_xor_and_its_noisy_copies():
    xor = sigma.data.load("xor")
    assert xor.inputs.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and xor.targets.tolist() == [0, 1, 1, 0]
    noisy = sigma.data.load("xor", repeats=50, noise=0.1, seed=1)
    assert len(noisy) == 200
    assert 0.05 < float(np.abs(noisy.inputs - np.tile(xor.inputs, (50, 1))).mean()) < 0.12


def test_unknown_names_splits_and_registering_a_dataset(monkeypatch):
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    with pytest.raises(ValueError, match=r"no dataset called 'cifar'; known datasets: \[.*'mnist'"):
        sigma.data.load("cifar")
    with pytest.raises(ValueError, match=r"dataset 'mnist' has no split 'validation'; its splits are \['train', 'test'\]"):
        sigma.data.load("mnist", split="validation")
    sigma.data.register("tiny_squares", lambda split, download=True, n=3: sigma.data.InMemoryDataset(
        inputs=np.arange(n, dtype=np.float32)[:, None], targets=np.arange(n) ** 2), splits=["all"])
    assert sigma.data.load("tiny-squares", n=4).targets.tolist() == [0, 1, 4, 9]
    assert "tiny_squares" in sigma.data.available()
