"""Preprocessors: fitted statistics, encodings, augmentations, chaining."""
import numpy as np
import pytest

from sigma.data import (Cast, HorizontalFlip, InMemoryDataset, Normalise, OneHot, Permute, Pipeline, RandomCrop,
                        Reshape, Shuffle, UserFunction)
from sigma.data.errors import DataFormatError


def _sections(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return {"inputs": rng.normal(3.0, 2.0, (n, 4)).astype(np.float32) * np.array([1, 10, 100, 0.1], np.float32),
            "targets": rng.integers(0, 3, n)}


def test_global_normalise_matches_numpy_and_uses_training_statistics_only():
    train, test = _sections(seed=0), _sections(seed=1)
    step = Normalise().fit(train)
    x = train["inputs"].astype(np.float64)
    np.testing.assert_allclose(step(train)["inputs"], (x - x.mean()) / x.std(), rtol=1e-4, atol=1e-5)
    # The test split is scaled with the training statistics, not its own.
    expected = (test["inputs"].astype(np.float64) - x.mean()) / x.std()
    np.testing.assert_allclose(step(test)["inputs"], expected, rtol=1e-4, atol=1e-5)
    assert step(test)["inputs"].dtype == np.float32
    assert test["inputs"].dtype == np.float32 and step(test)["inputs"] is not test["inputs"]


def test_per_feature_and_per_channel_normalise():
    train = _sections()
    out = Normalise(per_feature=True).fit(train)(train)["inputs"]
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    images = np.random.default_rng(0).integers(0, 256, (20, 3, 5, 5)).astype(np.uint8)
    images[:, 2] //= 4
    out = Normalise(axes=(0, 2, 3)).fit({"inputs": images})({"inputs": images})["inputs"]
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_normalise_errors_and_constant_features():
    with pytest.raises(RuntimeError, match="Normalise is not fitted"):
        Normalise()({"inputs": np.ones((2, 2))})
    bad = np.ones((5, 2), np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(DataFormatError, match="holds NaN or infinite values \\(first at sample 3\\)"):
        Normalise().fit({"inputs": bad})
    constant = {"inputs": np.full((4, 2), 7.0)}
    assert Normalise(per_feature=True).fit(constant)(constant)["inputs"].tolist() == [[0.0, 0.0]] * 4
    with pytest.raises(ValueError, match="give both mean and std"):
        Normalise(mean=1.0)


def test_one_hot():
    out = OneHot().fit({"targets": np.array([0, 2, 1])})({"targets": np.array([2, 0])})["targets"]
    assert out.tolist() == [[0, 0, 1], [1, 0, 0]] and out.dtype == np.float32
    with pytest.raises(DataFormatError, match="label 5 is outside 0..2"):
        OneHot(classes=3)({"targets": np.array([1, 5])})
    with pytest.raises(DataFormatError, match="must hold integer labels"):
        OneHot(classes=3)({"targets": np.array([0.5])})


def test_shuffle_keeps_sections_aligned_and_is_seeded():
    data = {"inputs": np.arange(20).reshape(10, 2), "targets": np.arange(10)}
    a = Shuffle()(data, np.random.default_rng(3))
    b = Shuffle()(data, np.random.default_rng(3))
    np.testing.assert_array_equal(a["targets"], b["targets"])
    assert a["targets"].tolist() != list(range(10))
    np.testing.assert_array_equal(a["inputs"][:, 0], a["targets"] * 2)


def test_cast_reshape_permute():
    data = {"inputs": np.arange(24, dtype=np.uint8).reshape(2, 12)}
    out = Pipeline(Cast("inputs", "float64"), Reshape("inputs", (2, 3, 2)), Permute("inputs", (2, 0, 1)))(data)
    assert out["inputs"].shape == (2, 2, 2, 3) and out["inputs"].dtype == np.float64
    assert out["inputs"][1, 1, 0, 2] == data["inputs"][1].reshape(2, 3, 2)[0, 2, 1]
    with pytest.raises(DataFormatError, match="samples of shape \\(12,\\) cannot become \\(5,\\)"):
        Reshape("inputs", (5,))(data)
    with pytest.raises(DataFormatError, match="not a permutation"):
        Permute("inputs", (1, 0))(data)


def test_random_crop_takes_a_window_of_the_padded_image():
    images = np.random.default_rng(0).integers(1, 255, (16, 2, 6, 7)).astype(np.uint8)
    out = RandomCrop(size=(6, 7), padding=2)({"inputs": images}, np.random.default_rng(5))["inputs"]
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, [(0, 0), (0, 0), (2, 2), (2, 2)])
    offsets = set()
    for i in range(16):
        matches = [(t, l) for t in range(5) for l in range(5) if (padded[i, :, t:t + 6, l:l + 7] == out[i]).all()]
        assert matches, f"crop {i} is no window of the padded image"
        offsets.add(matches[0])
    assert len(offsets) > 3
    again = RandomCrop(size=(6, 7), padding=2)({"inputs": images}, np.random.default_rng(5))["inputs"]
    np.testing.assert_array_equal(out, again)


def test_horizontal_flip():
    images = np.arange(2 * 1 * 2 * 3).reshape(2, 1, 2, 3)
    always = HorizontalFlip(probability=1.0)({"inputs": images}, np.random.default_rng(0))["inputs"]
    np.testing.assert_array_equal(always, images[..., ::-1])
    never = HorizontalFlip(probability=0.0)({"inputs": images}, np.random.default_rng(0))["inputs"]
    np.testing.assert_array_equal(never, images)
    many = np.random.default_rng(1).random((400, 1, 1, 2))
    half = HorizontalFlip()({"inputs": many}, np.random.default_rng(2))["inputs"]
    flipped = (half[:, 0, 0, 0] == many[:, 0, 0, 1]).sum()
    assert 150 < flipped < 250


def test_pipeline_fits_each_step_on_the_previous_output_and_user_functions():
    data = {"inputs": np.array([[0.0], [10.0]]), "targets": np.array([0, 1])}
    pipeline = Pipeline(lambda s: {**s, "inputs": s["inputs"] + 100.0}, Normalise()).fit(data)
    assert pipeline.steps[1].mean == pytest.approx(105.0)
    assert pipeline(data)["inputs"].ravel().tolist() == [-1.0, 1.0]
    noisy = UserFunction(lambda s, random: {**s, "inputs": s["inputs"] + random.normal(size=s["inputs"].shape)})
    assert noisy.random and Pipeline(noisy).random
    with pytest.raises(TypeError, match="returned int, expected the dict of sections"):
        UserFunction(lambda s: 3)(data)


def test_dataset_map_applies_a_fitted_pipeline_eagerly():
    train = InMemoryDataset(_sections(seed=0))
    test = InMemoryDataset(_sections(seed=1))
    pipeline = Pipeline(Normalise(per_feature=True), OneHot(classes=3)).fit(train.batch(slice(None)))
    mapped = test.map(pipeline)
    assert mapped["targets"].shape == (50, 3) and mapped["inputs"].dtype == np.float32
    assert abs(float(train.map(pipeline)["inputs"].mean())) < 1e-5


def test_fitting_on_a_dataset_reads_it_in_chunks(tmp_path):
    from sigma.data import BlockCachedDataset, write_hdf5
    rng = np.random.default_rng(0)
    arrays = {"inputs": rng.normal(5.0, 3.0, (9000, 3)).astype(np.float32), "targets": rng.integers(0, 4, 9000)}
    write_hdf5(tmp_path / "d.h5", arrays, block_rows=500)
    disk = BlockCachedDataset(tmp_path / "d.h5", memory_budget=2 * 500 * 20)
    from_disk = Normalise(per_feature=True).fit(disk)
    in_memory = Normalise(per_feature=True).fit(arrays)
    np.testing.assert_allclose(from_disk.mean, in_memory.mean, rtol=1e-12)
    np.testing.assert_allclose(from_disk.std, arrays["inputs"].std(axis=0), rtol=1e-5)
    assert OneHot().fit(disk).classes == 4
    bad = InMemoryDataset(inputs=np.r_[np.zeros(5000), [np.inf], np.zeros(10)])
    with pytest.raises(DataFormatError, match="first at sample 5000"):
        Normalise().fit(bad)
