#!/usr/bin/python3
"""Writes tests/data/reference.h5: a PyTorch reference for kdtrain's engine.

A 20-16-16-5 ReLU MLP, a batch of 8, teacher logits and labels; the distillation
loss alpha*T^2*KL(softmax(t/T) || softmax(s/T)) + (1-alpha)*CE(s, y) with batch-mean
reduction. Under /losses, for the same batch with rows 2 and 5 unlabelled (-1), every
distill.loss (kl, reverse_kl, js, dkd, lsk) mixed the same way, its per-row divergence
and its gradients with respect to the logits and every parameter, written with the
papers' reference code (F.kl_div, F.log_softmax; mdistiller's dkd_loss; the LSK code's
normalize with torch.std). Inputs and weights are float32 values; the expected logits, loss and
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


# ---- the distillation losses (distill.loss), as their papers' reference code writes them ----

LOSS_TEMPERATURE = 4.0
LOSS_ALPHA = 0.7
DKD_TARGET_WEIGHT = 1.0  # mdistiller's alpha
DKD_NONTARGET_WEIGHT = 8.0  # mdistiller's beta (the paper's default)
UNLABELLED_ROWS = [2, 5]  # rows whose label is -1: the divergence alone


def _get_gt_mask(logits, target):  # mdistiller/distillers/DKD.py
    target = target.reshape(-1)
    return torch.zeros_like(logits).scatter_(1, target.unsqueeze(1), 1).bool()


def _get_other_mask(logits, target):  # mdistiller/distillers/DKD.py
    target = target.reshape(-1)
    return torch.ones_like(logits).scatter_(1, target.unsqueeze(1), 0).bool()


def cat_mask(t, mask1, mask2):  # mdistiller/distillers/DKD.py
    t1 = (t * mask1).sum(dim=1, keepdims=True)
    t2 = (t * mask2).sum(1, keepdims=True)
    return torch.cat([t1, t2], dim=1)


def dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
    """mdistiller's dkd_loss (batch mean), with reduction="sum" for the deprecated
    size_average=False. The -1000 mask is exact in float64 here: exp(-1000) underflows to
    0, and dkd_nckd_exact checks it against the non-target columns taken out."""
    gt_mask = _get_gt_mask(logits_student, target)
    other_mask = _get_other_mask(logits_student, target)
    pred_student = F.softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    pred_student = cat_mask(pred_student, gt_mask, other_mask)
    pred_teacher = cat_mask(pred_teacher, gt_mask, other_mask)
    log_pred_student = torch.log(pred_student)
    tckd_loss = F.kl_div(log_pred_student, pred_teacher, reduction="sum") * (temperature**2) / target.shape[0]
    pred_teacher_part2 = F.softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
    log_pred_student_part2 = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask, dim=1)
    nckd_loss = F.kl_div(log_pred_student_part2, pred_teacher_part2, reduction="sum") * (temperature**2) / target.shape[0]
    return alpha * tckd_loss + beta * nckd_loss


def dkd_nckd_exact(s, t, target, temperature):
    """NCKD per row from the non-target columns themselves (no -1000 mask)."""
    keep = _get_other_mask(s, target)
    c = s.shape[1]
    s_nt = s[keep].reshape(-1, c - 1)
    t_nt = t[keep].reshape(-1, c - 1)
    return F.kl_div(F.log_softmax(s_nt / temperature, 1), F.softmax(t_nt / temperature, 1),
                    reduction="none").sum(1) * temperature**2


def normalize(logit):  # logit-standardization-KD, mdistiller/distillers/KD.py
    mean = logit.mean(dim=-1, keepdims=True)
    stdv = logit.std(dim=-1, keepdims=True)
    return (logit - mean) / (1e-7 + stdv)


def lsk_kd_loss(logits_student_in, logits_teacher_in, temperature):
    """The LSK reference's kd_loss(..., reduce=False, logit_stand=True): per row."""
    logits_student = normalize(logits_student_in)
    logits_teacher = normalize(logits_teacher_in)
    log_pred_student = F.log_softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    return F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1) * temperature**2


def divergence(kind, s, t, target, T):
    """D_T per row, T^2 included."""
    log_q, log_p = F.log_softmax(s / T, 1), F.log_softmax(t / T, 1)
    if kind == "kl":
        return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(1) * T**2
    if kind == "reverse_kl":
        return F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(1) * T**2
    if kind == "js":
        log_m = torch.logaddexp(log_p, log_q) - np.log(2.0)
        return 0.5 * (F.kl_div(log_m, log_p, reduction="none", log_target=True).sum(1)
                      + F.kl_div(log_m, log_q, reduction="none", log_target=True).sum(1)) * T**2
    if kind == "dkd":  # mdistiller's batch mean, called one row at a time
        rows = [dkd_loss(s[i:i + 1], t[i:i + 1], target[i:i + 1], DKD_TARGET_WEIGHT, DKD_NONTARGET_WEIGHT, T)
                for i in range(s.shape[0])]
        return torch.stack(rows)
    if kind == "lsk":
        return lsk_kd_loss(s, t, T)
    raise ValueError(kind)


def losses_reference(f, x32, teacher32, labels, layers):
    """Every distill.loss on the network's batch, some rows unlabelled: the batch mean of
    a_i D_T + (1 - a_i) CE, a_i = alpha (labelled) or 1 (label -1), and its gradients with
    respect to the logits and every parameter, in float64 by autograd."""
    labels_u = labels.clone()
    labels_u[UNLABELLED_ROWS] = -1
    teacher = teacher32.double()
    labelled = labels_u >= 0
    # DKD's target: the label, or the teacher's top class for an unlabelled row.
    target = torch.where(labelled, labels_u, teacher.argmax(1))
    g = f.create_group("losses")
    g.attrs["temperature"] = LOSS_TEMPERATURE
    g.attrs["alpha"] = LOSS_ALPHA
    g.attrs["dkd_target_weight"] = DKD_TARGET_WEIGHT
    g.attrs["dkd_nontarget_weight"] = DKD_NONTARGET_WEIGHT
    g["labels"] = labels_u.numpy().astype(np.int32)
    for kind in ["kl", "reverse_kl", "js", "dkd", "lsk"]:
        weights = [l.weight.detach().double().t().contiguous().requires_grad_() for l in layers]
        biases = [l.bias.detach().double().clone().requires_grad_() for l in layers]
        h = x32.double()
        for k, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if k < len(layers) - 1:
                h = torch.relu(h)
        logits = h
        logits.retain_grad()
        d = divergence(kind, logits, teacher, target, LOSS_TEMPERATURE)
        a = torch.where(labelled, torch.tensor(LOSS_ALPHA, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
        ce = F.cross_entropy(logits, labels_u.clamp(min=0), reduction="none")
        loss = (a * d + (1 - a) * ce).mean()
        loss.backward()
        if kind == "dkd":  # the -1000 mask against exact non-target columns
            T = LOSS_TEMPERATURE
            s, t = logits.detach(), teacher
            gt = _get_gt_mask(s, target)
            ps, pt = cat_mask(F.softmax(s / T, 1), gt, ~gt), cat_mask(F.softmax(t / T, 1), gt, ~gt)
            tckd = F.kl_div(torch.log(ps), pt, reduction="none").sum(1) * T**2
            exact = DKD_TARGET_WEIGHT * tckd + DKD_NONTARGET_WEIGHT * dkd_nckd_exact(s, t, target, T)
            assert torch.allclose(exact, d.detach(), rtol=1e-14, atol=0), (exact, d)
        if kind == "kl":  # the same loss as the file's own distillation loss at these settings
            assert LOSS_TEMPERATURE == TEMPERATURE and LOSS_ALPHA == ALPHA
        f[f"losses/{kind}/loss"] = np.array([loss.item()])
        f[f"losses/{kind}/divergence"] = d.detach().numpy()
        f[f"losses/{kind}/grads/logits"] = logits.grad.numpy()
        for k, (w, b) in enumerate(zip(weights, biases), start=1):
            f[f"losses/{kind}/grads/layer{k}/W"] = w.grad.numpy()
            f[f"losses/{kind}/grads/layer{k}/b"] = b.grad.numpy().reshape(1, -1)


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
        losses_reference(f, x32, teacher32, labels, layers)
    print(f"wrote {out_path}: loss {loss.item():.10f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/reference.h5")
