"""A limited evaluation leaves its iterator where it was."""
import numpy as np

import sigma
import sigma.data
from sigma import nn, optim
from sigma.training import Worker


def test_limited_evaluation_does_not_shorten_the_next_full_one():
    data = sigma.data.InMemoryDataset(inputs=np.arange(12, dtype=np.float32).reshape(6, 2),
                                      targets=np.array([0, 1, 0, 1, 0, 1]))
    batches = sigma.data.MinibatchIterator(data, batch_size=2, shuffle=False)
    net = nn.Linear(2, 2)
    worker = Worker(net, nn.CrossEntropyLoss(), optim.SGD(net.parameters(), lr=0.1))
    full = worker.evaluate(batches)
    worker.evaluate(batches, limit=1)
    again = worker.evaluate(batches)
    assert again == full   # all 6 samples again, not the 4 after the limited pass
