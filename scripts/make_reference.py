#!/usr/bin/python3
"""Writes tests/data/reference.h5: a PyTorch reference for kdtrain's engine.

A 20-16-16-5 ReLU MLP, a batch of 8, teacher logits and labels; the distillation
loss alpha*T^2*KL(softmax(t/T) || softmax(s/T)) + (1-alpha)*CE(s, y) with batch-mean
reduction. Inputs and weights are float32 values; the expected logits, loss and
gradients are computed from them in float64, so the C test measures its own
float32 error against an exact answer. Run once with Debian's python3-torch and
python3-h5py and commit the output; the tests never need Python:

    /usr/bin/python3 scripts/make_reference.py tests/data/reference.h5
"""
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

SIZES = [20, 16, 16, 5]
BATCH = 8
TEMPERATURE = 4.0
ALPHA = 0.7
SEED = 20261129


def optimizer_reference(f):
    """Three steps of torch.optim.AdamW and SGD (Nesterov) on fixed float32 gradients."""
    gen = torch.Generator().manual_seed(SEED + 1)
    p0 = torch.randn(37, generator=gen)
    grads = [torch.randn(37, generator=gen) for _ in range(3)]
    f["optim/p0"] = p0.numpy()
    f["optim/grads"] = torch.stack(grads).numpy()
    settings = {
        "adamw": (torch.optim.AdamW, dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
        "sgd": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    }
    for name, (cls, kwargs) in settings.items():
        p = p0.clone().requires_grad_()
        opt = cls([p], **kwargs)
        steps = []
        for g in grads:
            p.grad = g.clone()
            opt.step()
            steps.append(p.detach().clone())
        f[f"optim/{name}"] = torch.stack(steps).numpy()
        for k, v in kwargs.items():
            f[f"optim/{name}"].attrs[k] = np.array(v, dtype=np.float64)


def main(out_path):
    torch.manual_seed(SEED)
    # float32 values first, so that the C side reads exactly these numbers.
    layers = [torch.nn.Linear(i, o) for i, o in zip(SIZES[:-1], SIZES[1:])]
    x32 = torch.randn(BATCH, SIZES[0])
    teacher32 = 3.0 * torch.randn(BATCH, SIZES[-1])
    labels = torch.randint(0, SIZES[-1], (BATCH,))

    # The exact computation, in float64 from the float32 values.
    weights = [l.weight.detach().double().t().contiguous().requires_grad_() for l in layers]  # (in, out)
    biases = [l.bias.detach().double().clone().requires_grad_() for l in layers]
    h = x32.double()
    for k, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w + b
        if k < len(layers) - 1:
            h = torch.relu(h)
    logits = h
    logits.retain_grad()
    teacher = teacher32.double()
    log_ps = F.log_softmax(logits / TEMPERATURE, dim=1)
    log_pt = F.log_softmax(teacher / TEMPERATURE, dim=1)
    kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
    ce = F.cross_entropy(logits, labels)
    loss = ALPHA * TEMPERATURE ** 2 * kl + (1 - ALPHA) * ce
    loss.backward()

    with h5py.File(out_path, "w") as f:
        f.attrs["temperature"] = TEMPERATURE
        f.attrs["alpha"] = ALPHA
        f.attrs["layer_sizes"] = np.array(SIZES, dtype=np.int32)
        f.attrs["seed"] = SEED
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["made_by"] = "scripts/make_reference.py"
        f["inputs/x"] = x32.numpy()
        f["inputs/labels"] = labels.numpy().astype(np.int32)
        f["inputs/teacher_logits"] = teacher32.numpy()
        for k, (w, b) in enumerate(zip(weights, biases), start=1):
            f[f"params/layer{k}/W"] = w.detach().float().numpy()
            f[f"params/layer{k}/b"] = b.detach().float().numpy().reshape(1, -1)
            f[f"expected/grads/layer{k}/W"] = w.grad.numpy()
            f[f"expected/grads/layer{k}/b"] = b.grad.numpy().reshape(1, -1)
        f["expected/logits"] = logits.detach().numpy()
        f["expected/log_softmax_T"] = log_ps.detach().numpy()
        f["expected/loss"] = np.array([loss.item()])
        f["expected/kl"] = np.array([kl.item()])
        f["expected/ce"] = np.array([ce.item()])
        f["expected/grads/logits"] = logits.grad.numpy()
        optimizer_reference(f)
    print(f"wrote {out_path}: loss {loss.item():.10f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/reference.h5")
