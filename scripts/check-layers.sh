#!/usr/bin/env bash
# Checks that every include between src/ folders points down the layers, and prints
# the folder-to-folder include counts. Layers, bottom up (docs/ARCHITECTURE.md):
#   1 core   2 nn, mpi (side by side; mpi is built only with MPI, for cli)   3 io   4 data, calib (side by side: neither includes the other)
#   5 workflows   6 cli, api (side by side)
# The public header include/kdtrain/kdtrain.h includes no header of src/, and only api/
# includes it ("kdtrain/kdtrain.h").
# Exit status 1, with each offending line, when a file includes a header from its own
# layer's sibling or from a layer above it. Run by the test suite (ctest -R layers).
set -euo pipefail
cd "$(dirname "$0")/.."
awk '
  BEGIN { rank["core"] = 1; rank["nn"] = 2; rank["mpi"] = 2; rank["io"] = 3; rank["data"] = 4; rank["calib"] = 4
          rank["workflows"] = 5; rank["cli"] = 6; rank["api"] = 6; bad = 0 }
  match($0, /^[ \t]*#[ \t]*include[ \t]+"[a-z0-9_]+\/[a-z0-9_.]+"/) {
    split(FILENAME, p, "/"); from = p[2]
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc); split(inc, q, "/"); to = q[1]
    if (p[1] == "include") { printf "%s:%d: the public header includes %s, a header of src/\n", FILENAME, FNR, inc; bad = 1; next }
    if (to == "kdtrain") {
      if (from != "api") { printf "%s:%d: %s includes the public header %s: only api/ may\n", FILENAME, FNR, from, inc; bad = 1 }
      else count[from " -> public header"]++
      next
    }
    if (!(from in rank) || !(to in rank)) { printf "%s:%d: unknown layer in %s\n", FILENAME, FNR, inc; bad = 1; next }
    if (from != to) count[from " -> " to]++
    if (from != to && rank[to] >= rank[from]) { printf "%s:%d: %s includes %s, a layer not below it\n", FILENAME, FNR, from, inc; bad = 1 }
  }
  END { for (k in count) printf "  %-20s %3d includes\n", k, count[k] | "sort"; close("sort")
        if (bad) print "check-layers: includes that point up or sideways (above)"; else print "check-layers: every include points down"
        exit bad }' src/*/*.c src/*/*.h include/kdtrain/*.h
