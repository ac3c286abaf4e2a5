"""A network describes itself as data: names, types, output shapes, parameter counts."""
import json

import numpy as np
import pytest

import sigma
from sigma import nn


def beautiful_mnist():
    return nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.Conv2d(32, 32, 5), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(576, 10))


def test_sequential_cnn_shapes_and_counts():
    net = beautiful_mnist()
    description = net.describe((2, 1, 28, 28))
    rows = [(r.name, r.type, r.output_shape, r.parameters, r.depth) for r in description]
    assert rows[0] == ("", "Sequential", (2, 10), description.total_parameters, 0)
    assert rows[1] == ("0", "Conv2d", (2, 32, 24, 24), 32 * 25 + 32, 1)
    assert rows[5] == ("4", "BatchNorm2d", (2, 32, 20, 20), 64, 1)
    assert rows[6] == ("5", "MaxPool2d", (2, 32, 10, 10), 0, 1)
    assert rows[-2] == ("12", "Flatten", (2, 576), 0, 1)
    assert rows[-1] == ("13", "Linear", (2, 10), 5770, 1)
    assert description.total_parameters == sum(p.size for p in net.parameters())
    assert description.total_parameters == sum(r.parameters for r in description[1:])


def test_describe_leaves_modes_statistics_and_random_stream_untouched():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    net[1].train()
    net[2].eval()
    state = sigma.default_backend().random.get_state()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    net.describe((5, 3))
    assert net[0].training and net[1].training and not net[2].training
    assert all(np.array_equal(before[k], v.numpy()) for k, v in net.state_dict().items())
    assert sigma.default_backend().random.get_state() == state
    assert all(not m._forward_hooks for m in net.modules())


class TwoTowers(nn.Module):
    def __init__(self):
        super().__init__()
        self.text = nn.Embedding(10, 4)
        self.image = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GlobalAvgPool2d())
        self.memory = nn.LSTM(4, 3, batch_first=True)
        self.head = nn.Linear(5, 1)

    def forward(self, tokens, image):
        words, (h, _) = self.memory(self.text(tokens))
        joined = sigma.concat([h[0], self.image(image)], axis=1)
        return self.head(joined), words


def test_multi_input_multi_output_network_with_nested_shapes():
    description = TwoTowers().describe([(2, 6), (2, 1, 5, 5)], dtype=["int64", "float32"])
    by_name = {r.name: r for r in description}
    assert by_name[""].output_shape == ((2, 1), (2, 6, 3))
    assert by_name["text"].output_shape == (2, 6, 4)
    assert by_name["memory"].output_shape == ((2, 6, 3), ((1, 2, 3), (1, 2, 3)))
    assert by_name["image.1"].output_shape == (2, 2) and by_name["image.1"].depth == 2
    assert [r.name for r in description] == ["", "text", "image", "image.0", "image.1", "memory", "head"]
    text = str(description)
    assert "[(2, 6, 3), [(1, 2, 3), (1, 2, 3)]]" in text and "total parameters:" in text
    record = json.loads(json.dumps(description.to_dict()))
    assert record["input_shapes"] == [[2, 6], [2, 1, 5, 5]]
    assert record["layers"][5]["output_shape"] == [[2, 6, 3], [[1, 2, 3], [1, 2, 3]]]
    assert record["total_parameters"] == description.total_parameters


def test_a_module_called_twice_has_one_record_per_call():
    shared = nn.Linear(3, 3)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = shared

        def forward(self, x):
            return self.layer(self.layer(x)[:, :2].concat([x[:, :1]], axis=1))

    records = Twice().describe((4, 3))
    assert [(r.name, r.output_shape) for r in records] == [("", (4, 3)), ("layer", (4, 3)), ("layer", (4, 3))]


def test_table_lines_up_and_counts_frozen_parameters_separately():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    net[0].requires_grad_(False)
    description = net.describe((1, 2))
    assert description.total_parameters == 13 and description.trainable_parameters == 4
    lines = str(description).splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "parameters"]
    assert lines[-1] == "total parameters: 13 (trainable: 4)"
    assert len({len(line) for line in lines[2:-2]}) == 1   # rows are padded to one width


@pytest.mark.parametrize("shape", [(), "28x28", [(1, 2), "x"], (2, -1)])
def test_bad_input_shape_is_named(shape):
    with pytest.raises(ValueError, match="input_shape"):
        nn.Linear(2, 2).describe(shape)
