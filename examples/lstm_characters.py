"""A character-level LSTM language model, trained on Sigma's own architecture
guide (docs/architecture.md, bundled with the repository).

It learns to predict the next character; the script reports bits per
character against the best any memoryless model can do (the entropy of the
character frequencies), and samples some text at the end.

    python examples/lstm_characters.py            # 1,500 steps
    python examples/lstm_characters.py --quick    # CI: 150 short steps
"""
from __future__ import annotations

import argparse
import math
import pathlib

import numpy as np

import sigma
import sigma.data
from sigma import nn, optim

TEXT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


class CharacterModel(nn.Module):
    def __init__(self, vocabulary: int, embedding: int = 32, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocabulary)

    def forward(self, ids, state=None):
        outputs, state = self.lstm(self.embed(ids), state)
        return self.head(outputs), state


def unigram_bits(ids: np.ndarray, vocabulary: int) -> float:
    """Entropy of the character frequencies: the loss of the best memoryless predictor."""
    p = np.bincount(ids.ravel(), minlength=vocabulary) / ids.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sample(net: CharacterModel, tokens, prompt_ids, length: int, rng) -> str:
    with sigma.no_grad():
        logits, state = net(sigma.tensor(np.array([prompt_ids])))
        out = []
        for _ in range(length):
            p = sigma.softmax(logits[0, -1]).numpy().astype(np.float64)
            token = int(rng.choice(len(p), p=p / p.sum()))
            out.append(tokens[token])
            logits, state = net(sigma.tensor(np.array([[token]])), state)
    return "".join(out)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="CI version: 150 short steps, a smaller LSTM")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.length, args.hidden = 150, 32, 64
    sigma.manual_seed(0)
    data = sigma.data.from_text(TEXT, length=args.length)
    vocabulary = len(data.classes)
    baseline = unigram_bits(data.inputs, vocabulary)
    net = CharacterModel(vocabulary, hidden=args.hidden)
    optimiser = optim.Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    curve = []
    for step in range(args.steps):
        batch = data[rng.integers(0, len(data), args.batch)]
        optimiser.zero_grad()
        logits, _ = net(sigma.tensor(batch["inputs"]))
        loss = sigma.softmax_cross_entropy(logits.reshape(-1, vocabulary), sigma.tensor(batch["targets"].ravel()))
        loss.backward()
        optim.clip_grad_norm(net.parameters(), 1.0)
        optimiser.step()
        curve.append(loss.item() / math.log(2))
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  {curve[-1]:.3f} bits/char  (memoryless best: {baseline:.3f})")
    final = float(np.mean(curve[-20:]))
    prompt = "The "
    ids = data.vocabulary.encode(prompt).tolist()
    print(prompt + sample(net, data.classes, ids, 200, rng))
    return {"bits_per_char": final, "baseline_bits": baseline, "curve": curve}


if __name__ == "__main__":
    main()
