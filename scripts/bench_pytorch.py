#!/usr/bin/python3
"""The PyTorch side of scripts/bench.sh: the same training steps and temperature fit
as kdtrain's benchmarks, timed with Debian's python3-torch (1.13) on the CPU.

    /usr/bin/python3 scripts/bench_pytorch.py [--threads 2] [--steps 200] [--quick]
                                              [--logits PREFIX] [--path auto]

Prints `name value` lines on stdout (N = the thread count):

    pytorch_path              the way the Linear layers were run (see below)
    pytorch_teacher_b128_tN   samples/s, 784-1200-1200-10, ReLU, dropout 0.3, Adam, CE
    pytorch_teacher_b256_tN   the same at batch 256
    pytorch_student_b128_tN   samples/s, 784-64-10, Adam, CE
    pytorch_distill_b128_tN   samples/s, 784-64-10, Adam, cached teacher logits,
                              alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE,
                              T = 4, alpha = 0.9
    pytorch_lbfgs_ms_tN       gpleiss/temperature_scaling's fit (LBFGS, lr 0.01,
                              max_iter 50, T from 1.5): best wall time of 5, in ms
    pytorch_lbfgs_T_tN        the temperature it ends at
    pytorch_lbfgs_nll_tN      the NLL at that temperature, in float64
    pytorch_version           torch.__version__

A training step is zero_grad(set_to_none=True), forward, loss, backward, Adam step, on
one fixed synthetic batch (x uniform in [0, 1), random labels; no data loading, as in
bench/bench_train.c); S steps are timed after a few untimed warm-up steps.
Progress and explanations go to stderr.

The Linear path. Debian builds torch against the generic (reference) BLAS, so
nn.Linear / F.linear run single-threaded at about 5 GFLOP/s: ~0.3 s (up to 0.6 s on a
busy machine) per teacher step at batch 128. Its oneDNN
(mkldnn) build is the fast path, but torch 1.13 sends float32 matrix products to
BLAS whatever torch.backends.mkldnn says (DNNL_VERBOSE=1 shows no oneDNN call for
F.linear). Candidates, fastest first, ms per training step measured on the project's
2-core machine with 2 threads (teacher b128, teacher b256, student b128):

    mkldnn_linear  19.6  29.7  0.70  torch._C._nn.mkldnn_linear(x.to_mkldnn(), W, b).to_dense()
                                     with W and b the ordinary dense parameters: autograd's own
                                     MkldnnLinearBackward0 gives dense weight and bias gradients
                                     and x's gradient through to_mkldnn. oneDNN reorders W to its
                                     blocked layout in each forward and dW back in each backward.
                                     (With W.to_mkldnn() too, the backward fails: "itensor_view_
                                     from_dense expects dense tensor input"; with a dense x the
                                     op has no CPU kernel. A custom autograd.Function calling
                                     mkldnn_linear_backward_input/_weights works but is slower.)
    conv1x1        38.9  66.3  1.20  F.conv2d on [B, in, 1, 1] with W as [out, in, 1, 1] (oneDNN
                                     convolution forward and backward)
    nn.Linear       323   631  5.50  reference BLAS (single-threaded)

--path auto (the default) takes the first of these whose loss and gradients match
F.linear's on a small MLP; --path NAME forces one.
"""
import argparse
import math
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except Exception:  # ImportError, or a broken install
    print("pytorch: not installed (apt-get install python3-torch)", file=sys.stderr)
    sys.exit(0)

TEACHER = [784, 1200, 1200, 10]
STUDENT = [784, 64, 10]
DROPOUT = 0.3
KD_T, KD_ALPHA = 4.0, 0.9
LBFGS_REPEAT = 5


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def out(name, value):
    print(f"{name} {value}", flush=True)


# --- the Linear paths -------------------------------------------------------------------

def linear_mkldnn(x, w, b):
    return torch._C._nn.mkldnn_linear(x.to_mkldnn(), w, b).to_dense()


def linear_conv1x1(x, w, b):
    return F.conv2d(x[:, :, None, None], w[:, :, None, None], b).flatten(1)


PATHS = {"mkldnn_linear": linear_mkldnn, "conv1x1": linear_conv1x1, "nn.Linear": F.linear}


class MLP(torch.nn.Module):
    """Linear -> ReLU (-> dropout) ... -> Linear, nn.Linear parameters and initialisation,
    the products through the chosen path."""

    def __init__(self, sizes, dropout, linear):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.dropout = dropout
        self.linear = linear

    def forward(self, x):
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = self.linear(x, layer.weight, layer.bias)
            if k < last:
                x = F.relu(x)
                if self.dropout > 0:
                    x = F.dropout(x, self.dropout, self.training)
        return x


def kd_loss(student, teacher, labels, T=KD_T, alpha=KD_ALPHA):
    """alpha T^2 KL(softmax(t/T) || softmax(s/T)) (batch mean) + (1 - alpha) CE(s, y)."""
    soft = F.kl_div(F.log_softmax(student / T, dim=1), F.log_softmax(teacher / T, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * T * T * soft + (1.0 - alpha) * F.cross_entropy(student, labels)


def check_path(name):
    """Loss and gradients of a 20-16-16-5 MLP (batch 8, CE and KD loss) through the path
    against F.linear. Returns (ok, worst relative difference) or (False, error text)."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 20, generator=gen)
    y = torch.randint(0, 5, (8,), generator=gen)
    t = 3.0 * torch.randn(8, 5, generator=gen)
    torch.manual_seed(7)
    ref = MLP([20, 16, 16, 5], 0.0, F.linear)
    test = MLP([20, 16, 16, 5], 0.0, PATHS[name])
    test.load_state_dict(ref.state_dict())
    worst = 0.0
    try:
        for loss_fn in (lambda z: F.cross_entropy(z, y), lambda z: kd_loss(z, t, y)):
            xs = []
            for model in (ref, test):
                model.zero_grad(set_to_none=True)
                xi = x.clone().requires_grad_()
                loss = loss_fn(model(xi))
                loss.backward()
                xs.append([loss.detach(), xi.grad] + [p.grad for p in model.parameters()])
            for a, b in zip(*xs):
                if b is None or b.shape != a.shape or b.is_mkldnn:
                    return False, "a missing or non-dense gradient"
                worst = max(worst, ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item())
    except Exception as e:  # noqa: BLE001 - any failure rules the path out
        return False, str(e).splitlines()[0]
    return worst < 1e-4, worst


# --- training steps -----------------------------------------------------------------------

def bench_train(sizes, dropout, batch, steps, warmup, linear, distill=False):
    torch.manual_seed(1)
    model = MLP(sizes, dropout, linear).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    teacher = 4.0 * torch.randn(batch, sizes[-1])  # cached teacher logits

    def step():
        opt.zero_grad(set_to_none=True)
        z = model(x)
        loss = kd_loss(z, teacher, y) if distill else F.cross_entropy(z, y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    seconds = time.perf_counter() - start
    if not math.isfinite(loss.item()):
        raise RuntimeError("non-finite loss")
    return batch * steps / seconds, 1e3 * seconds / steps


# --- the temperature fit (gpleiss/temperature_scaling's ModelWithTemperature) ------------

def load_logits(prefix):
    with open(prefix + ".shape") as f:
        n, c = (int(v) for v in f.read().split()[:2])
    z = np.fromfile(prefix + ".logits.f32", dtype="<f4")
    y = np.fromfile(prefix + ".labels.i32", dtype="<i4")
    if z.size != n * c or y.size != n:
        raise ValueError(f"{prefix}.*: shape says {n} x {c}, found {z.size} logits and {y.size} labels")
    if y.min() < 0 or y.max() >= c:
        raise ValueError(f"{prefix}.labels.i32: labels outside [0, {c})")
    return z.reshape(n, c), y


def synthetic_logits(n=10000, c=10):
    rng = np.random.default_rng(1)
    z = (4.0 * rng.standard_normal((n, c))).astype(np.float32)
    p = np.exp(z / 2.0 - (z / 2.0).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((n, 1))
    y = np.minimum((u > np.cumsum(p, axis=1)).sum(axis=1), c - 1).astype(np.int32)
    return z, y


def nll64(z64, y, T):
    s = z64 / T
    s = s - s.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]))


def lbfgs_fit(logits, labels):
    temperature = torch.nn.Parameter(torch.ones(1) * 1.5)
    optimizer = torch.optim.LBFGS([temperature], lr=0.01, max_iter=50)
    nll_criterion = torch.nn.CrossEntropyLoss()

    def closure():
        optimizer.zero_grad()
        t = temperature.unsqueeze(1).expand(logits.size(0), logits.size(1))
        loss = nll_criterion(logits / t, labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return temperature.item(), optimizer.state[temperature]["func_evals"]


def best_temperature(z64, y):
    """The exact minimiser of the NLL (for stderr only): golden section on log T."""
    a, b = math.log(0.05), math.log(100.0)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll64(z64, y, math.exp(c)), nll64(z64, y, math.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll64(z64, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll64(z64, y, math.exp(d))
    t = math.exp((a + b) / 2)
    return t, nll64(z64, y, t)


# --- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 200, 40 with --quick)")
    ap.add_argument("--logits", metavar="PREFIX", help="fit T on PREFIX.logits.f32 / .labels.i32 / .shape")
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    ap.add_argument("--path", default="auto", choices=["auto"] + list(PATHS),
                    help="how to run the Linear layers (default: the fastest that passes the gradient check)")
    args = ap.parse_args()
    if args.threads < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--threads and --steps must be positive")
    if args.logits:
        try:
            z, y = load_logits(args.logits)
        except (OSError, ValueError) as e:
            say(f"bench_pytorch: {e}")
            return 1
        source = args.logits + ".*"
    else:
        z, y = synthetic_logits()
        source = "synthetic 4 N(0,1) logits, labels from softmax(z/2), numpy default_rng(1)"
    steps = args.steps if args.steps is not None else (40 if args.quick else 200)
    warmup = max(3, min(10, steps // 10))
    n = args.threads
    torch.set_num_threads(n)
    say(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"mkldnn {'available' if torch.backends.mkldnn.is_available() else 'NOT available'}; "
        f"{steps} timed steps after {warmup} warm-up steps")

    # The Linear path: the first candidate that computes the same loss and gradients.
    chosen = None
    for name in (list(PATHS) if args.path == "auto" else [args.path]):
        ok, detail = check_path(name)
        say(f"  path {name}: gradient check {'passed' if ok else 'FAILED'} "
            f"({'max relative difference %.2e' % detail if isinstance(detail, float) else detail})")
        if ok:
            chosen = name
            break
    if chosen is None:
        if args.path != "auto":
            say(f"bench_pytorch: --path {args.path} does not reproduce F.linear's gradients")
            return 1
        chosen = "nn.Linear"
    if chosen == "nn.Linear" and args.path == "auto":
        say("  no oneDNN path supports training here: plain nn.Linear through the reference BLAS (slow)")
    out("pytorch_path", chosen)
    linear = PATHS[chosen]

    for label, sizes, dropout, batch, distill in (
            (f"teacher_b128_t{n}", TEACHER, DROPOUT, 128, False),
            (f"teacher_b256_t{n}", TEACHER, DROPOUT, 256, False),
            (f"student_b128_t{n}", STUDENT, 0.0, 128, False),
            (f"distill_b128_t{n}", STUDENT, 0.0, 128, True)):
        rate, ms = bench_train(sizes, dropout, batch, steps, warmup, linear, distill)
        say(f"  {label}: {ms:.3f} ms/step")
        out(f"pytorch_{label}", f"{rate:.1f}")

    logits, labels = torch.from_numpy(z.copy()), torch.from_numpy(y.astype(np.int64))
    z64 = z.astype(np.float64)
    lbfgs_fit(logits, labels)  # warm-up
    best, T, evals = float("inf"), None, None
    for _ in range(LBFGS_REPEAT):
        start = time.perf_counter()
        T, evals = lbfgs_fit(logits, labels)
        best = min(best, time.perf_counter() - start)
    nll = nll64(z64, y, T)
    t_star, nll_star = best_temperature(z64, y)
    say(f"  LBFGS on {z.shape[0]} x {z.shape[1]} {source}: {evals} closure calls, T {T:.6f}, "
        f"NLL {fmt_nll(nll)} (at T = 1.5: {fmt_nll(nll64(z64, y, 1.5))}; "
        f"exact minimum T {t_star:.6f}, NLL {fmt_nll(nll_star)})")
    out(f"pytorch_lbfgs_ms_t{n}", f"{1e3 * best:.3f}")
    out(f"pytorch_lbfgs_T_t{n}", f"{T:.8f}")
    out(f"pytorch_lbfgs_nll_t{n}", fmt_nll(nll))
    out("pytorch_version", torch.__version__)
    return 0


def fmt_nll(v):
    return f"{v:.10f}"


if __name__ == "__main__":
    sys.exit(main())
