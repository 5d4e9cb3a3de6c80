#!/usr/bin/env python3
"""The measured numbers of scripts/scaling.sh as tables, and their projection to N machines
(results/scaling/README.md; docs/SCALING.md explains the model). Standard library only.

  scaling_projection.py MEASURED.csv STEPS.csv [--header TEXT]

The model, for one training step of a global batch of B rows over N machines like this
one (2 cores each), data parallel, the exchange not overlapped with the computation (as
kdtrain does it):
  compute(N) = rows / speed(rows), rows = B / N, speed measured by bench_train at that
               batch (STEPS.csv; interpolated in log-log between the measured batches)
  exchange(N) = 2 (N - 1) / N * G / bandwidth + 2 (N - 1) * latency + local
               (a ring allreduce's bytes and steps; kdtrain's ordered sum with
               train.shards = N moves the same: an all-to-all of 1/N chunks, then an
               allgather), G = the teacher's 2,395,210 float gradients = 9.58 MB,
               local = what the ordered sum took beyond MPI_Allreduce on loopback
               (packing the chunks and the separate sum pass), measured at N = 2
  speedup(N) = compute(1) / (compute(N) + exchange(N)), efficiency = speedup / N.
"""
import csv
import math
import sys

GRADIENT_BYTES = 2395210 * 4
NETWORKS = [  # name, bytes/s, latency per message (s): assumptions, stated in the output
    ("10 Gb/s Ethernet", 10e9 / 8, 25e-6),
    ("100 Gb/s (InfiniBand or RoCE)", 100e9 / 8, 3e-6),
]
MACHINES = [2, 4, 8, 16, 32, 64]
BATCHES = [(128, "128 (the teacher's)"), (1024, "1024 (or 8 batches of 128 accumulated)")]


def read_measured(path):
    with open(path) as f:
        return {row["what"]: float(row["seconds"]) for row in csv.DictReader(f)}


def read_steps(path):
    with open(path) as f:
        return sorted((int(r["rows"]), float(r["samples_per_second"])) for r in csv.DictReader(f))


def speed_at(steps, rows):
    """samples/s of one machine's step at `rows` rows, log-log interpolation."""
    if rows <= steps[0][0]:
        return steps[0][1] * rows / steps[0][0]  # below the smallest measured batch: the same time per step
    for (r0, s0), (r1, s1) in zip(steps, steps[1:]):
        if r0 <= rows <= r1:
            w = (math.log(rows) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(s0) + w * (math.log(s1) - math.log(s0)))
    return steps[-1][1]


def compute_seconds(steps, rows):
    return rows / speed_at(steps, rows)


def exchange_seconds(n, bandwidth, latency, local):
    return 2 * (n - 1) / n * GRADIENT_BYTES / bandwidth + 2 * (n - 1) * latency + local


def main():
    args = sys.argv[1:]
    header = ""
    if "--header" in args:
        i = args.index("--header")
        header = args[i + 1]
        del args[i : i + 2]
    measured, steps = read_measured(args[0]), read_steps(args[1])
    m = measured
    out = []
    out.append("# Scaling: measured here, projected to N machines\n")
    out.append(header + "\n")
    out.append("## Measured on this machine (2 cores, loopback)\n")
    out.append("The teacher (784-1200-1200-10, batch 128), the second of two epochs on Fashion-MNIST (%d steps):\n"
               % m["teacher_steps_per_epoch"])
    out.append("| how | train.shards | epoch (s) | ms a step | time against 1 process × 2 threads, 1 shard |")
    out.append("| --- | --- | --- | --- | --- |")
    base = m["teacher_epoch_1proc_2threads_1shard"]
    for key, name, shards in [("teacher_epoch_1proc_2threads_1shard", "1 process × 2 threads", 1),
                              ("teacher_epoch_1proc_2threads", "1 process × 2 threads", 2),
                              ("teacher_epoch_1proc_1thread", "1 process × 1 thread", 2),
                              ("teacher_epoch_2ranks_1thread", "`mpirun -np 2` × 1 thread", 2)]:
        out.append("| %s | %d | %.2f | %.2f | %.2f× |" % (name, shards, m[key],
                                                                  1e3 * m[key] / m["teacher_steps_per_epoch"], m[key] / base))
    out.append("")
    ex = m["teacher_epoch_2ranks_exchange"]
    out.append("Of the 2-rank epoch, %.2f s (%.0f%%, %.2f ms a step) went to the gradients' exchange, waiting for the "
               "slower rank included (rank 0's train.log).\n" % (ex, 100 * ex / m["teacher_epoch_2ranks_1thread"],
                                                               1e3 * ex / m["teacher_steps_per_epoch"]))
    out.append("One exchange of the teacher's 2,395,210 float gradients (9.58 MB) between 2 ranks on loopback "
               "(bench_allreduce, best of 30):\n")
    out.append("| shards | MPI_Allreduce (ms) | kdtrain's ordered sum (ms) | ordered sum equals one process's, bit for bit |")
    out.append("| --- | --- | --- | --- |")
    for s in (2, 6):
        out.append("| %d | %.2f | %.2f | %s |" % (s, m["allreduce_np2_S%d_ms" % s], m["ordered_np2_S%d_ms" % s],
                                                  "yes" if m["ordered_np2_S%d_equals_one_process" % s] == 1 else "NO"))
    out.append("")
    out.append("One machine's training step of the teacher at each batch (bench_train, 2 threads):\n")
    out.append("| rows | samples/s | ms a step |")
    out.append("| --- | --- | --- |")
    for rows, speed in steps:
        out.append("| %d | %.0f | %.3f |" % (rows, speed, 1e3 * rows / speed))
    out.append("")
    local = max(0.0, m["ordered_np2_S2_ms"] - m["allreduce_np2_S2_ms"]) / 1e3
    out.append("## Projected to N machines like this one\n")
    out.append("Model: a step's compute on each machine is its B/N rows at the measured speed for that batch; the "
               "exchange is a ring allreduce's 2 (N−1)/N × 9.58 MB at the full link rate plus 2 (N−1) message "
               "latencies (kdtrain's ordered sum with `train.shards = N` moves the same bytes), plus %.2f ms a step for "
               "what kdtrain's ordered sum took beyond MPI_Allreduce on this machine (measured above, S = 2: its "
               "packing, all-to-all, sum pass and allgather against MPI's one call); the exchange is not overlapped with the compute, as kdtrain "
               "does it. Latencies assumed: 25 µs "
               "a message on 10 Gb/s Ethernet, 3 µs on 100 Gb/s. Efficiency = speedup / N; speedup = one machine's "
               "step / (compute + exchange).\n" % (1e3 * local))
    for batch, label in BATCHES:
        one = compute_seconds(steps, batch)
        out.append("Global batch %s; one machine: %.2f ms a step.\n" % (label, 1e3 * one))
        out.append("| N | rows a machine | compute (ms) | " + " | ".join(
            "exchange, %s (ms) | speedup | efficiency" % name for name, _, _ in NETWORKS) + " |")
        out.append("| --- | --- | --- | " + " | ".join("--- | --- | ---" for _ in NETWORKS) + " |")
        for n in MACHINES:
            rows = batch / n
            comp = compute_seconds(steps, rows)
            cells = []
            for _, bw, lat in NETWORKS:
                exch = exchange_seconds(n, bw, lat, local)
                speedup = one / (comp + exch)
                cells.append("%.2f | %.2f× | %.0f%%" % (1e3 * exch, speedup, 100 * speedup / n))
            out.append("| %d | %g | %.2f | %s |" % (n, rows, 1e3 * comp, " | ".join(cells)))
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
