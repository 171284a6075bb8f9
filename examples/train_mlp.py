"""Train a small MLP on three interleaved 2-D spirals, then gradient-check it.

    python examples/train_mlp.py

What it shows, in order:
  1. data made with NumPy, a model from minidl.nn, Adam from minidl.optim;
  2. the training loop every minidl program uses:
        forward -> loss -> backward -> step -> zero_grad;
  3. the loss falling and the final accuracy;
  4. minidl.gradcheck on the *trained* network: the parameters are converted
     to float64 (finite differences need it) and the gradients of the loss
     with respect to every weight and to the input are compared with central
     differences.
Runs in a few seconds on a laptop CPU.
"""
import time

import numpy as np

import minidl
import minidl.nn as nn
import minidl.optim as optim
from minidl.gradcheck import gradcheck

CLASSES = 3


def spirals(n_per_class, rng, noise=0.2):
    """Three spiral arms in the plane: x (N, 2) float32, labels (N,) int64."""
    xs, ys = [], []
    for c in range(CLASSES):
        r = np.linspace(0.05, 1.0, n_per_class)                       # radius
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class)      # arm c's angles
        theta = theta + rng.standard_normal(n_per_class) * noise
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def cross_entropy(logits, onehot):
    r"""Mean softmax cross-entropy, written with Tensor ops.

    loss = mean_n [ -sum_c onehot[n,c] * log softmax(z)[n,c] ]
    log softmax(z) = z - m - log(sum_c exp(z - m)),  m = max_c z  (subtracting
    the max keeps exp from overflowing and does not change the result).
    """
    m = logits.max(dim=1, keepdim=True).values.detach()  # (N, 1), a constant shift
    shifted = logits - m
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()  # (N, C)
    return -(onehot * log_probs).sum(dim=1).mean()


def main(steps=300, hidden=32, seed=0):
    start = time.perf_counter()
    minidl.manual_seed(seed)                       # weight initialisation
    rng = np.random.default_rng(seed)              # the data
    x_np, y_np = spirals(100, rng)
    x = minidl.tensor(x_np)                        # (300, 2)
    onehot = minidl.tensor(np.eye(CLASSES, dtype=np.float32)[y_np])  # (300, 3)

    model = nn.Sequential(
        nn.Linear(2, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, CLASSES),
    )
    opt = optim.Adam(model.parameters(), lr=0.01)

    for step in range(steps + 1):
        loss = cross_entropy(model(x), onehot)   # forward, loss
        loss.backward()                          # backward
        opt.step()                               # step
        opt.zero_grad()                          # zero_grad
        if step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}")

    with minidl.no_grad():
        predicted = model(x).numpy().argmax(axis=1)
    accuracy = float((predicted == y_np).mean())
    print(f"final accuracy {accuracy:.1%} on {len(y_np)} points")

    # --- gradient check of the trained network, in float64 -------------------
    # gradcheck perturbs each parameter in place, so fn may read the model's
    # parameters directly; passing them as inputs tells gradcheck to check them.
    params = list(model.parameters())
    for p in params:
        p.data = p.detach().double()
    x64 = minidl.tensor(x_np[:6].astype(np.float64), requires_grad=True)
    t64 = minidl.tensor(onehot.numpy()[:6].astype(np.float64))

    def loss_of(x, *weights):
        return cross_entropy(model(x), t64)

    gradcheck(loss_of, (x64, *params))
    n = sum(p.numel() for p in params) + x64.numel()
    print(f"gradcheck passed ({n} gradient entries of the trained network, float64)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return accuracy


if __name__ == "__main__":
    main()
