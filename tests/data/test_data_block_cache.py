"""Block-cached HDF5 datasets: exact reads, the memory budget, streaming larger-than-budget data."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sigma.data import BlockCachedDataset, HDF5Writer, InMemoryDataset, MinibatchIterator, split, write_hdf5
from sigma.data.errors import DataFormatError


def _arrays(n=1000, features=6, seed=0):
    rng = np.random.default_rng(seed)
    return {"inputs": rng.normal(size=(n, features)).astype(np.float32), "targets": rng.integers(0, 10, n)}


def test_random_access_matches_the_arrays(tmp_path):
    arrays = _arrays()
    write_hdf5(tmp_path / "d.h5", arrays, block_rows=64)
    with BlockCachedDataset(tmp_path / "d.h5", memory_budget=4 * 64 * (24 + 8)) as data:
        assert len(data) == 1000 and data.sections == ("inputs", "targets")
        assert data.number_of_blocks == 16 and data.cache_capacity == 4
        index = np.random.default_rng(1).integers(0, 1000, 300)
        batch = data.batch(index)
        np.testing.assert_array_equal(batch["inputs"], arrays["inputs"][index])
        np.testing.assert_array_equal(batch["targets"], arrays["targets"][index])
        np.testing.assert_array_equal(data.block(15)["targets"], arrays["targets"][960:])
        assert data[999]["targets"] == arrays["targets"][999]
        assert data.cached_bytes <= data.memory_budget
        with pytest.raises(IndexError, match="block 16 is out of range"):
            data.block(16)


def test_least_recently_used_blocks_are_evicted(tmp_path):
    write_hdf5(tmp_path / "d.h5", _arrays(), block_rows=100)
    data = BlockCachedDataset(tmp_path / "d.h5", memory_budget=2 * 100 * (24 + 8))
    for number in [0, 1, 0, 2, 0, 1]:
        data.block(number)
    # 0 miss, 1 miss, 0 hit, 2 miss (evicts 1), 0 hit, 1 miss (evicts 2)
    assert (data.hits, data.misses) == (2, 4)
    assert list(data._cache) == [0, 1]
    data.close()


def test_budget_smaller_than_a_block_is_refused(tmp_path):
    write_hdf5(tmp_path / "d.h5", _arrays(), block_rows=100)
    with pytest.raises(ValueError, match=r"memory_budget 1000 bytes is smaller than one block \(100 rows x 32 bytes"):
        BlockCachedDataset(tmp_path / "d.h5", memory_budget=1000)


def test_writer_appends_pieces_and_leaves_nothing_on_failure(tmp_path):
    arrays = _arrays(300)
    with HDF5Writer(tmp_path / "d.h5", block_rows=50) as writer:
        for start in range(0, 300, 70):
            writer.append({name: a[start:start + 70] for name, a in arrays.items()})
    data = BlockCachedDataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(data.batch(slice(None))["inputs"], arrays["inputs"])
    assert data.block_rows == 50
    with pytest.raises(DataFormatError, match=r"section 'inputs': rows of shape \(5,\) float32"):
        with HDF5Writer(tmp_path / "bad.h5") as writer:
            writer.append({"inputs": np.zeros((2, 6), np.float32)})
            writer.append({"inputs": np.zeros((2, 5), np.float32)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_in_memory_dataset_copies_into_a_block_file(tmp_path):
    memory = InMemoryDataset(_arrays(250))
    write_hdf5(tmp_path / "d.h5", memory, block_rows=32)
    disk = BlockCachedDataset(tmp_path / "d.h5", memory_budget=10 ** 6)
    np.testing.assert_array_equal(disk.batch(slice(None))["targets"], memory["targets"])
    misses = disk.misses
    train, test = split(disk, [0.8, 0.2], stratify="targets")
    assert len(train) == 200 and len(test) == 50
    assert disk.misses == misses  # stratifying read the labels only, not the blocks
    np.testing.assert_array_equal(disk.where(targets=3).relabel(0).section("targets"),
                                  np.zeros((memory["targets"] == 3).sum()))


def test_shuffled_epoch_reads_each_block_once_and_sees_every_sample(tmp_path):
    arrays = _arrays(1000)
    arrays["inputs"][:, 0] = np.arange(1000)
    write_hdf5(tmp_path / "d.h5", arrays, block_rows=50)
    data = BlockCachedDataset(tmp_path / "d.h5", memory_budget=3 * 50 * 32)
    batches = MinibatchIterator(data, batch_size=25, shuffle=True, seed=2)
    seen = np.concatenate([b["inputs"].numpy()[:, 0] for b in batches]).astype(int)
    assert sorted(seen.tolist()) == list(range(1000))
    assert seen.tolist() != list(range(1000))
    assert data.misses == data.number_of_blocks
    np.testing.assert_array_equal(arrays["targets"][seen], np.concatenate([b["targets"].numpy() for b in
                                                                            MinibatchIterator(data, 25, seed=2)]))


_STREAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sigma
    from sigma.data import BlockCachedDataset, MinibatchIterator, Normalise, write_hdf5

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    path, budget = sys.argv[1], int(sys.argv[2])
    # Warm up every code path (h5py included) on a tiny file, so loading code is not counted as data.
    small_path = path + ".small.h5"
    write_hdf5(small_path, {"inputs": np.ones((256, 8), np.float32), "targets": np.arange(256)}, block_rows=64)
    small = BlockCachedDataset(small_path, memory_budget=10 ** 5)
    for _ in MinibatchIterator(small, batch_size=64, prefetch=2, transform=Normalise(mean=0.0, std=1.0)):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    baseline = status("VmRSS")
    data = BlockCachedDataset(path, memory_budget=budget)
    batches = MinibatchIterator(data, batch_size=64, seed=0, prefetch=2, transform=Normalise(mean=0.0, std=1.0))
    total = 0.0
    for _ in range(2):
        for batch in batches:
            total += float(batch["inputs"].numpy()[:, 0].sum())
    print(json.dumps({"baseline": baseline, "peak": status("VmHWM"), "misses": data.misses,
                      "blocks": data.number_of_blocks, "total": total}))
""")


def test_data_three_times_the_budget_streams_within_budget_plus_20_percent(tmp_path):
    budget = 16 * 2 ** 20
    rows, features, block_rows = 8192, 1536, 256   # 48 MiB of float32: three budgets
    with HDF5Writer(tmp_path / "big.h5", block_rows=block_rows) as writer:
        for start in range(0, rows, 1024):
            piece = np.full((1024, features), 1.0, np.float32)
            piece[:, 0] = np.arange(start, start + 1024)
            writer.append({"inputs": piece, "targets": np.arange(start, start + 1024)})
    size = rows * (features * 4 + 8)
    assert size >= 3 * budget
    script = tmp_path / "stream.py"
    script.write_text(_STREAM)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "big.h5"), str(budget)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["total"] == 2 * rows * (rows - 1) / 2     # every sample seen in both epochs
    assert result["misses"] <= 2 * result["blocks"] + 4      # blocks read about once per epoch
    growth = result["peak"] - result["baseline"]
    assert growth <= 1.2 * budget, f"peak RSS grew {growth / 2 ** 20:.1f} MiB for a {budget / 2 ** 20:.0f} MiB budget"
