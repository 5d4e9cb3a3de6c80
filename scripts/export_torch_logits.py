#!/usr/bin/python3
"""Trains a small PyTorch CNN on kdtrain's Fashion-MNIST splits and writes its validation
and test logits in both layouts kdtrain reads: the worked example of calibrating another
framework's model (README.md, "Calibrating another framework's model").

    /usr/bin/python3 scripts/export_torch_logits.py [--data data/fashion-mnist.h5]
        [--out data/torch-cnn] [--epochs 3] [--width 32] [--seed 1] [--threads 2] [--train] [--force]

Needs Debian's python3-torch (1.13), python3-h5py and python3-numpy, which
`scripts/bootstrap.sh --reference` installs (with python3-scipy and python3-sklearn,
which the fixture scripts need). kdtrain itself never needs Python.

Data. The splits are read from kdtrain's own data file (docs/DATA.md: /train/x, /train/y,
/val/x, /val/y, /test/x, /test/y, root attribute x_scale), so the validation and test rows
are exactly the ones kdtrain evaluates: without /val, the last 5000 training rows are the
validation split, as kdtrain's data.val_from_train default takes them. Features are
multiplied by x_scale (absent: 1/255 for uint8, 1 for floats), as kdtrain does.

Network (c = --width): conv(1->c, 3x3) ReLU maxpool(2) conv(c->2c, 3x3) ReLU maxpool(2)
dropout(0.25) fc(50c->128) ReLU fc(128->10); Adam, learning rate 1e-3, batch 128, cross-entropy, the
training rows shuffled by a seeded generator each epoch. After the default 3 epochs it is
close to calibrated, slightly underconfident (test accuracy 88.09 %, mean confidence
86.86 %); longer training makes it overconfident (--width 16 --epochs 8: 88.14 %, 88.78 %),
which is what a temperature corrects. Deterministic for a given --seed and --threads (torch.manual_seed,
torch.use_deterministic_algorithms). OpenMP threads wait passively (OMP_WAIT_POLICY,
unless set): spinning costs 3.6 times the CPU on a busy machine.

Cost, measured on the project's 2-core machine while other jobs kept it at a load of
about 14: 0.10 s of CPU a training step at width 32 (0.04 s at width 16), 430 steps an
epoch; spinning OpenMP threads made it 0.37 s.

Outputs in OUT (each written to a temporary name in OUT, then renamed; an existing output
is an error unless --force, checked before training starts):

    cnn-val.h5, cnn-test.h5       /logits [N, 10] float32, the raw logits (no temperature,
                                  no softmax); /labels [N] int64; root attributes
                                  model (a description), split ("val" or "test") and
                                  provenance (JSON: command line, seed, threads, epochs,
                                  date, torch version, data file, this script's commit)
    cnn-val-logits.npy, cnn-val-labels.npy, cnn-test-logits.npy, cnn-test-labels.npy
                                  the same arrays with np.save (kdtrain finds a labels file
                                  by replacing the last "logits" in the logits file's name
                                  with "labels")
  with --train, also (a teacher for `kdtrain distill`, docs/TEACHERS.md):
    cnn-train.h5, cnn-train-logits.npy, cnn-train-labels.npy
                                  the logits of every training row in the data set's order,
                                  followed by the validation rows (split attribute
                                  "train+val"): without /val in the data file, one row per
                                  row of /train/x. Evaluation mode, like the others.
                                  kdtrain distill --teacher OUT/cnn-train.h5 reads them (its
                                  validation rows serve distill.calibrate_teachers)

Progress goes to stdout: per epoch the mean training loss, the validation accuracy and
the seconds taken; at the end validation and test accuracy, NLL, mean confidence and
ECE (15 equal-width bins), and the files written. Exit status 1 on a missing package, a
bad data file or an existing output; 2 on bad options.
"""
import argparse
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time

PROG = "export_torch_logits.py"

# Idle OpenMP threads sleep instead of spinning. On a shared machine, spinning threads
# wait for descheduled ones at every barrier: measured with 2 threads under a load of
# 14 on 2 cores, 366 ms of CPU a training step spinning against 102 ms sleeping (1 thread:
# 101 ms). Must be set before torch starts its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_missing = []
try:
    import numpy as np
except ImportError:
    _missing.append("python3-numpy")
try:
    import h5py
except ImportError:
    _missing.append("python3-h5py")
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    _missing.append("python3-torch")
if _missing:
    print(f"{PROG}: needs {', '.join(_missing)}: install Debian's python3-torch python3-h5py "
          f"python3-numpy (`sudo apt-get install {' '.join(_missing)}`, or scripts/bootstrap.sh "
          f"--reference) and run it with /usr/bin/python3 (this is {sys.executable})",
          file=sys.stderr)
    sys.exit(1)

VAL_FROM_TRAIN = 5000  # kdtrain's data.val_from_train default
BATCH = 128
EVAL_BATCH = 1000
LR = 1e-3
DROPOUT = 0.25
HIDDEN = 128
OUTPUTS = ["cnn-val.h5", "cnn-test.h5", "cnn-val-logits.npy", "cnn-val-labels.npy",
           "cnn-test-logits.npy", "cnn-test-labels.npy"]
TRAIN_OUTPUTS = ["cnn-train.h5", "cnn-train-logits.npy", "cnn-train-labels.npy"]  # with --train


class Fail(Exception):
    """An error the user can cause (a file, a value in it, an existing output)."""


# --- data ------------------------------------------------------------------------------

def read_split(f, path, xname, yname):
    for name in (xname, yname):
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise Fail(f"{path}:{name}: expected a dataset, found none")
    x, y = f[xname], f[yname]
    if x.ndim not in (2, 3):
        raise Fail(f"{path}:{xname}: expected features of rank 2 [N, D] or 3 [N, H, W], found rank {x.ndim}")
    if x.dtype not in (np.uint8, np.float32, np.float64):
        raise Fail(f"{path}:{xname}: expected uint8, float32 or float64 features, found {x.dtype}")
    if y.dtype.kind not in "iu" or not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise Fail(f"{path}:{yname}: expected integer labels [N] or [N, 1], found {y.dtype} {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise Fail(f"{path}:{yname}: expected {x.shape[0]} labels ({xname} has {x.shape[0]} rows), "
                   f"found {y.shape[0]}")
    return x[()], y[()].reshape(-1).astype(np.int64)


def image_shape(f, path, x):
    if x.ndim == 3:
        return x.shape[1], x.shape[2]
    if "image_shape" in f.attrs:
        h, w = (int(v) for v in np.asarray(f.attrs["image_shape"]).reshape(-1)[:2])
    else:
        h = w = int(round(math.sqrt(x.shape[1])))
    if h * w != x.shape[1] or h < 10 or w < 10:
        raise Fail(f"{path}:/train/x: expected square images of at least 10x10 (or an image_shape "
                   f"attribute), found {x.shape[1]} features a row")
    return h, w


def load_data(path):
    """The train, val and test splits as kdtrain reads them: features [N, 1, H, W] in the
    stored type, the x_scale to apply, labels int64 and the class count."""
    if not os.path.exists(path):
        raise Fail(f"{path}: cannot open: no such file (make it with `build/kdtrain prepare fashion-mnist`)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise Fail(f"{path}: cannot open as HDF5 ({e})")
    with f:
        splits = {"train": read_split(f, path, "/train/x", "/train/y")}
        if "/val/x" in f or "/val/y" in f:
            splits["val"] = read_split(f, path, "/val/x", "/val/y")
        else:
            x, y = splits["train"]
            if x.shape[0] <= VAL_FROM_TRAIN:
                raise Fail(f"{path}:/train/x: without /val, expected more than {VAL_FROM_TRAIN} rows "
                           f"to take the validation split from, found {x.shape[0]}")
            splits["train"] = (x[:-VAL_FROM_TRAIN], y[:-VAL_FROM_TRAIN])
            splits["val"] = (x[-VAL_FROM_TRAIN:], y[-VAL_FROM_TRAIN:])
        splits["test"] = read_split(f, path, "/test/x", "/test/y")
        h, w = image_shape(f, path, splits["train"][0])
        dtype = splits["train"][0].dtype
        for name, (x, _) in splits.items():
            if x.dtype != dtype or int(np.prod(x.shape[1:])) != h * w:
                raise Fail(f"{path}:/{name}/x: expected {dtype} rows of {h * w} features like /train/x, "
                           f"found {x.dtype} {x.shape}")
        if "x_scale" in f.attrs:
            scale = float(np.asarray(f.attrs["x_scale"]).reshape(-1)[0])
        else:
            scale = 1.0 / 255.0 if dtype == np.uint8 else 1.0
        if not math.isfinite(scale) or scale <= 0:
            raise Fail(f"{path}: attribute x_scale: expected a positive number, found {scale}")
        if "num_classes" in f.attrs:
            classes = int(np.asarray(f.attrs["num_classes"]).reshape(-1)[0])
        else:
            classes = 1 + max(int(y.max()) for _, y in splits.values())
    out = {}
    for name, (x, y) in splits.items():
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise Fail(f"{path}:/{name}/y: expected labels in 0..{classes - 1}, found {y.min()}..{y.max()}")
        if x.dtype != np.uint8 and not np.isfinite(x).all():
            raise Fail(f"{path}:/{name}/x: expected finite features, found NaN or Inf")
        out[name] = (torch.from_numpy(np.ascontiguousarray(x).reshape(-1, 1, h, w)), torch.from_numpy(y))
    return out, scale, classes, (h, w)


# --- the network -----------------------------------------------------------------------

def make_net(hw, width, classes):
    """The CNN for images hw = (H, W); shapes below for 28x28 and width c."""
    h, w = ((hw[0] - 2) // 2 - 2) // 2, ((hw[1] - 2) // 2 - 2) // 2  # after two conv3 + pool2
    return nn.Sequential(
        nn.Conv2d(1, width, 3), nn.ReLU(), nn.MaxPool2d(2),              # (B, c, 13, 13)
        nn.Conv2d(width, 2 * width, 3), nn.ReLU(), nn.MaxPool2d(2),      # (B, 2c, 5, 5)
        nn.Flatten(), nn.Dropout(DROPOUT),                               # (B, 50c)
        nn.Linear(2 * width * h * w, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes))


def describe(hw, width, classes):
    h, w = ((hw[0] - 2) // 2 - 2) // 2, ((hw[1] - 2) // 2 - 2) // 2
    return (f"conv(1-{width},3x3)-ReLU-maxpool2-conv({width}-{2 * width},3x3)-ReLU-maxpool2-dropout{DROPOUT}-"
            f"fc({2 * width * h * w}-{HIDDEN})-ReLU-fc({HIDDEN}-{classes})")


def features(x, scale):
    return x.to(torch.float32) * scale


@torch.no_grad()
def logits_of(net, x, scale):
    net.eval()
    return torch.cat([net(features(x[i:i + EVAL_BATCH], scale)) for i in range(0, len(x), EVAL_BATCH)])


def metrics(logits, labels):
    """Accuracy, NLL (mean, natural log), mean confidence and ECE (15 equal-width bins), in float64."""
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    conf, pred = np.exp(logp.max(1)), logp.argmax(1)
    correct = pred == labels
    bins = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
    ece = sum(abs(conf[bins == b].sum() - correct[bins == b].sum()) for b in range(15)) / len(labels)
    return dict(acc=correct.mean(), nll=-logp[np.arange(len(labels)), labels].mean(),
                conf=conf.mean(), ece=ece)


# --- output ------------------------------------------------------------------------------

def script_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        if not commit:
            return "unknown"
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", os.path.abspath(__file__)],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + (" (with uncommitted changes to this script)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_atomic(final, write):
    """write(tmp_path) makes the file under a temporary name in final's folder; it becomes
    final only once complete and flushed to disk."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(final) + ".", suffix=".tmp",
                               dir=os.path.dirname(final) or ".")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; an ordinary file's mode instead
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_h5(path, logits, labels, attrs):
    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("logits", data=logits)
            f.create_dataset("labels", data=labels)
            for k, v in attrs.items():
                f.attrs[k] = v
    write_atomic(path, write)


def write_npy(path, array):
    def write(tmp):
        with open(tmp, "wb") as fh:  # a file object: np.save would append .npy to a name
            np.save(fh, array)
    write_atomic(path, write)


def check_written(paths, split, logits, labels):
    """Reads the files back: the same arrays, shapes and types in both layouts."""
    with h5py.File(paths[0], "r") as f:
        ok = (f["logits"].dtype == np.float32 and f["labels"].dtype == np.int64
              and np.array_equal(f["logits"][()], logits) and np.array_equal(f["labels"][()], labels)
              and f.attrs["split"] == split)
    ok = ok and np.array_equal(np.load(paths[1]), logits) and np.array_equal(np.load(paths[2]), labels)
    if not ok:
        raise Fail(f"{paths[0]}: the files read back differ from what was written")


# --- main --------------------------------------------------------------------------------

def positive(kind):
    def parse(text):
        v = kind(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, found {text}")
        return v
    return parse


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/fashion-mnist.h5", help="kdtrain's data file (default %(default)s)")
    ap.add_argument("--out", default="data/torch-cnn", help="output folder (default %(default)s)")
    ap.add_argument("--epochs", type=positive(int), default=3, help="training epochs (default %(default)s)")
    ap.add_argument("--width", type=positive(int), default=32,
                    help="channels of the first convolution, the second has twice as many (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="seed of weights, order and dropout (default %(default)s)")
    ap.add_argument("--threads", type=positive(int), default=2, help="torch threads (default %(default)s)")
    ap.add_argument("--train", action="store_true",
                    help="also write the logits of the training rows, then the validation rows, in the data "
                         "set's order (cnn-train.h5 and its .npy pair): a teacher for kdtrain distill")
    ap.add_argument("--force", action="store_true", help="replace existing outputs")
    args = ap.parse_args()

    paths = {name: os.path.join(args.out, name) for name in OUTPUTS + (TRAIN_OUTPUTS if args.train else [])}
    taken = [p for p in paths.values() if os.path.exists(p)]
    if taken and not args.force:
        raise Fail(f"{taken[0]}: exists; not overwritten (use --force to replace the outputs in {args.out})")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise Fail(f"{args.out}: expected a folder for --out, found a file")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    order = torch.Generator().manual_seed(args.seed + 1)

    t0 = time.time()
    splits, scale, classes, hw = load_data(args.data)
    (xtr, ytr), (xva, yva), (xte, yte) = splits["train"], splits["val"], splits["test"]
    print(f"data: {args.data}: train {len(xtr)}, val {len(xva)}, test {len(xte)} images {hw[0]}x{hw[1]}, "
          f"{classes} classes, x_scale {scale:.6g} ({time.time() - t0:.1f} s)", flush=True)

    net = make_net(hw, args.width, classes)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    print(f"model: {describe(hw, args.width, classes)}, {sum(p.numel() for p in net.parameters())} parameters, torch {torch.__version__}, "
          f"{args.threads} threads, seed {args.seed}", flush=True)
    t_train = time.time()
    for epoch in range(1, args.epochs + 1):
        t = time.time()
        net.train()
        perm = torch.randperm(len(xtr), generator=order)
        total, count = 0.0, 0
        for i in range(0, len(xtr), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(net(features(xtr[idx], scale)), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        val_acc = (logits_of(net, xva, scale).argmax(1) == yva).double().mean().item()
        print(f"epoch {epoch}/{args.epochs}: train loss {total / count:.4f}, val accuracy "
              f"{100 * val_acc:.2f} %, {time.time() - t:.1f} s", flush=True)
    train_seconds = time.time() - t_train

    model = (f"PyTorch CNN {describe(hw, args.width, classes)}, Adam lr {LR:g} batch {BATCH}, "
             f"{args.epochs} epochs, seed {args.seed} (scripts/export_torch_logits.py)")
    provenance = json.dumps({
        "command": shlex.join([sys.executable] + sys.argv),
        "cwd": os.getcwd(),
        "seed": args.seed,
        "threads": args.threads,
        "epochs": args.epochs,
        "width": args.width,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "data": os.path.abspath(args.data),
        "script_commit": script_commit(),
        "train_seconds": round(train_seconds, 1),
    })
    os.makedirs(args.out, exist_ok=True)
    results = {}
    outputs = [("val", "val", xva, yva), ("test", "test", xte, yte)]
    if args.train:  # the training rows, then the validation rows: kdtrain's teacher-file layout
        outputs.append(("train", "train+val", torch.cat([xtr, xva]), torch.cat([ytr, yva])))
    for name, split, x, y in outputs:
        logits = logits_of(net, x, scale).numpy().astype(np.float32)  # (N, classes), raw
        labels = y.numpy().astype(np.int64)                             # (N)
        results[split] = metrics(logits, labels)
        files = [paths[f"cnn-{name}.h5"], paths[f"cnn-{name}-logits.npy"], paths[f"cnn-{name}-labels.npy"]]
        if not args.force:  # checked again: another process may have made one meanwhile
            taken = [p for p in files if os.path.exists(p)]
            if taken:
                raise Fail(f"{taken[0]}: exists; not overwritten (use --force)")
        write_h5(files[0], logits, labels, {"model": model, "split": split, "provenance": provenance})
        write_npy(files[1], logits)
        write_npy(files[2], labels)
        check_written(files, split, logits, labels)
    print(f"trained in {train_seconds:.0f} s")
    for split, m in results.items():
        print(f"{split:4s}: accuracy {100 * m['acc']:.2f} %, NLL {m['nll']:.4f}, mean confidence "
              f"{100 * m['conf']:.2f} %, ECE {100 * m['ece']:.2f} %")
    print("wrote:")
    for p in paths.values():
        print(f"  {p}  ({os.path.getsize(p)} bytes)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        sys.exit(1)
