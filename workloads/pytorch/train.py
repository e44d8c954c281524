"""A PyTorch-style training loop (numpy, so it runs without a GPU or a registry).

Reads a CSV dataset from the shared /app directory, trains a small two-layer
network with minibatch SGD, and writes a checkpoint and metrics back to /app.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()

    data = np.loadtxt(args.data, delimiter=",", skiprows=1)
    x, y = data[:, :-1], data[:, -1:]
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.5, (x.shape[1], 16))
    b1 = np.zeros(16)
    w2 = rng.normal(0, 0.5, (16, 1))
    b2 = np.zeros(1)
    start = time.time()
    losses = []
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            idx = order[i : i + 32]
            h = np.tanh(x[idx] @ w1 + b1)
            pred = h @ w2 + b2
            grad = 2 * (pred - y[idx]) / len(idx)
            gw2, gb2 = h.T @ grad, grad.sum(0)
            gh = grad @ w2.T * (1 - h**2)
            gw1, gb1 = x[idx].T @ gh, gh.sum(0)
            w1 -= args.lr * gw1
            b1 -= args.lr * gb1
            w2 -= args.lr * gw2
            b2 -= args.lr * gb2
        loss = float(np.mean((np.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2))
        losses.append(loss)
        print(f"epoch {epoch + 1:3d}/{args.epochs} loss {loss:.5f}", flush=True)
    out = Path(args.out)
    np.savez(out / "checkpoint.npz", w1=w1, b1=b1, w2=w2, b2=b2)
    metrics = {"epochs": args.epochs, "first_loss": losses[0], "final_loss": losses[-1], "seconds": time.time() - start}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
