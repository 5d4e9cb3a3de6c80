#!/usr/bin/python3
"""The PyTorch side of scripts/bench.sh: the same training steps and temperature fit
as kdtrain's benchmarks, timed with Debian's python3-torch (1.13) on the CPU.

    /usr/bin/python3 scripts/bench_pytorch.py [--threads 2] [--steps 200] [--quick]
                                              [--logits PREFIX] [--path auto]
                                              [--precision fp32|bf16|both]

Prints `name value` lines on stdout (N = the thread count). --precision fp32 prints the
float32 lines below; bf16 the bfloat16 ones and pytorch_version; both (the default) the
float32 lines, then the bfloat16 ones, then pytorch_version.

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

  bfloat16 mixed precision (torch.autocast(device_type="cpu", dtype=torch.bfloat16)
  around forward and loss, backward outside it, the same Adam on float32 master weights):

    pytorch_bf16_ok           1 if F.linear under autocast returns bfloat16, the weight
                              gradients stay float32, and a small MLP's loss and gradients
                              under autocast agree with float32's (check_bf16); 0 otherwise,
                              and then no other pytorch_bf16_ line follows
    pytorch_bf16_path         F.linear (the only Linear path autocast runs in bfloat16, below)
    pytorch_bf16_onednn       the oneDNN matmul implementation F.linear reached under
                              autocast (from DNNL_VERBOSE=1 in a child python, e.g.
                              brg:avx512_core_amx_bf16), `none` if oneDNN ran no matmul
    pytorch_bf16_teacher_b128_tN  samples/s, as pytorch_teacher_b128_tN
    pytorch_bf16_teacher_b256_tN  as pytorch_teacher_b256_tN
    pytorch_bf16_student_b128_tN  as pytorch_student_b128_tN
    pytorch_bf16_distill_b128_tN  as pytorch_distill_b128_tN

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

The bfloat16 path. Under autocast F.linear is on the list of ops cast to bfloat16, and
torch 1.13 sends bfloat16 matrix products to oneDNN (with AVX512_BF16 or AMX, on this
machine oneDNN's brgemm AMX matmul, forward and both backward products), so the slow
BLAS is out of the way. mkldnn_linear is not on autocast's lists (it stays float32), and
conv1x1 does run in bfloat16 but is 3 to 7 times slower than F.linear there, so --path
applies to float32 only. The loss functions run as autocast decides (log_softmax,
cross_entropy and kl_div take the bfloat16 logits; the loss comes out float32).
"""
import argparse
import contextlib
import math
import os
import subprocess
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
BF16_LOSS_TOLERANCE = 5e-2  # relative; bfloat16 keeps 8 significant bits (2^-8 = 3.9e-3)
BF16_MIN_COSINE = 0.98       # of every bfloat16 gradient with its float32 counterpart


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


def autocast_bf16():
    return torch.autocast(device_type="cpu", dtype=torch.bfloat16)


def check_bf16():
    """Whether autocast runs F.linear in bfloat16 here: the output dtype of one product,
    the dtype of the weight gradient (float32 master weights), and a 20-16-16-5 MLP
    (batch 8, CE and KD loss) under autocast against float32 F.linear: the loss within
    BF16_LOSS_TOLERANCE (relative), every gradient at cosine similarity >= BF16_MIN_COSINE.
    Not an elementwise bound: bfloat16 rounding flips the odd ReLU whose input is near 0,
    which changes single gradient elements by tens of percent of the largest (seen for
    1 seed in 20; its worst cosine was 0.989, the others' above 0.9998; the relative loss
    difference was at most 1.5e-2 over those 20 seeds). Returns (ok, text)."""
    try:
        w = torch.randn(4, 3, requires_grad=True)
        with autocast_bf16():
            z = F.linear(torch.randn(2, 3), w)
        if z.dtype != torch.bfloat16:
            return False, f"F.linear under autocast returned {z.dtype}"
        z.float().sum().backward()
        if w.grad is None or w.grad.dtype != torch.float32:
            return False, f"the weight gradient is {None if w.grad is None else w.grad.dtype}"
        gen = torch.Generator().manual_seed(7)
        x = torch.randn(8, 20, generator=gen)
        y = torch.randint(0, 5, (8,), generator=gen)
        t = 3.0 * torch.randn(8, 5, generator=gen)
        torch.manual_seed(7)
        model = MLP([20, 16, 16, 5], 0.0, F.linear)
        worst_loss, worst_cosine = 0.0, 1.0
        for loss_fn in (lambda z: F.cross_entropy(z, y), lambda z: kd_loss(z, t, y)):
            xs = []
            for context in (contextlib.nullcontext, autocast_bf16):
                model.zero_grad(set_to_none=True)
                xi = x.clone().requires_grad_()
                with context():
                    loss = loss_fn(model(xi))
                loss.backward()
                xs.append([loss.detach().float(), xi.grad] + [p.grad for p in model.parameters()])
            (loss32, *grads32), (loss16, *grads16) = xs
            worst_loss = max(worst_loss, (abs(loss16 - loss32) / abs(loss32)).item())
            for a, b in zip(grads32, grads16):
                if b is None or b.shape != a.shape or b.dtype != torch.float32:
                    return False, "a missing or non-float32 gradient"
                worst_cosine = min(worst_cosine, F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item())
    except Exception as e:  # noqa: BLE001 - any failure rules the path out
        return False, str(e).splitlines()[0]
    ok = worst_loss < BF16_LOSS_TOLERANCE and worst_cosine >= BF16_MIN_COSINE
    return ok, (f"loss differs from float32 by {worst_loss:.1e} (relative, at most {BF16_LOSS_TOLERANCE:g}), "
                f"gradients at cosine >= {worst_cosine:.5f} (at least {BF16_MIN_COSINE:g})")


ONEDNN_PROBE = """
import torch, torch.nn.functional as F
torch.set_num_threads(1)
x = torch.rand(32, 64, requires_grad=True)
w = torch.randn(48, 64, requires_grad=True)
with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
    z = F.linear(x, w)
z.float().sum().backward()
"""


def onednn_matmul():
    """The oneDNN matmul implementations an autocast F.linear forward and backward reach,
    read from DNNL_VERBOSE=1 in a child python (oneDNN prints on the C stdout)."""
    env = dict(os.environ, DNNL_VERBOSE="1", ONEDNN_VERBOSE="1")
    try:
        run = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], env=env, capture_output=True,
                             text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return "none", f"the probe failed: {e}"
    impls = []
    for line in run.stdout.splitlines():
        f = line.split(",")
        if len(f) > 4 and f[1] == "exec" and f[3] == "matmul" and f[4] not in impls:
            impls.append(f[4])
    if run.returncode != 0:
        return "none", f"the probe exited with {run.returncode}"
    return ("+".join(impls) if impls else "none"), f"{len(impls)} implementation(s)"


# --- training steps -----------------------------------------------------------------------

def bench_train(sizes, dropout, batch, steps, warmup, linear, distill=False, bf16=False):
    torch.manual_seed(1)
    model = MLP(sizes, dropout, linear).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, sizes[0])
    y = torch.randint(0, sizes[-1], (batch,))
    teacher = 4.0 * torch.randn(batch, sizes[-1])  # cached teacher logits
    context = autocast_bf16 if bf16 else contextlib.nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        with context():
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
                    help="how to run the Linear layers in float32 (default: the fastest that passes the "
                         "gradient check)")
    ap.add_argument("--precision", default="both", choices=["fp32", "bf16", "both"],
                    help="float32 training steps and temperature fit, bfloat16 autocast training steps, "
                         "or both (default)")
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

    if args.precision in ("fp32", "both") and run_fp32(args, n, steps, warmup, z, y, source):
        return 1
    if args.precision in ("bf16", "both"):
        run_bf16(n, steps, warmup)
    out("pytorch_version", torch.__version__)
    return 0


def run_fp32(args, n, steps, warmup, z, y, source):
    """The float32 lines: the Linear path, the training steps, the temperature fit."""
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
    return 0


def run_bf16(n, steps, warmup):
    """The bfloat16 autocast lines (see the docstring's last paragraph)."""
    ok, detail = check_bf16()
    say(f"  bf16 autocast: check {'passed' if ok else 'FAILED'} ({detail})")
    out("pytorch_bf16_ok", 1 if ok else 0)
    if not ok:
        say("  no bfloat16 training steps: autocast does not run F.linear in bfloat16 here")
        return
    impl, detail = onednn_matmul()
    say(f"  bf16 F.linear under autocast reaches oneDNN matmul: {impl} ({detail})")
    out("pytorch_bf16_path", "F.linear")
    out("pytorch_bf16_onednn", impl)
    for label, sizes, dropout, batch, distill in (
            (f"teacher_b128_t{n}", TEACHER, DROPOUT, 128, False),
            (f"teacher_b256_t{n}", TEACHER, DROPOUT, 256, False),
            (f"student_b128_t{n}", STUDENT, 0.0, 128, False),
            (f"distill_b128_t{n}", STUDENT, 0.0, 128, True)):
        rate, ms = bench_train(sizes, dropout, batch, steps, warmup, F.linear, distill, bf16=True)
        say(f"  bf16 {label}: {ms:.3f} ms/step")
        out(f"pytorch_bf16_{label}", f"{rate:.1f}")


def fmt_nll(v):
    return f"{v:.10f}"


if __name__ == "__main__":
    sys.exit(main())
