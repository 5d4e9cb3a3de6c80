#!/usr/bin/env bash
# Checks that ctest runs every test case: the binary lists as many test cases as the
# sources hold TEST_CASE( lines, and no name holds a character that ctest's test
# discovery splits or misreads (';' cut a name in two entries that matched nothing,
# and Catch2 v2 exits 0 when no test ran). Run by the test suite (ctest -R test_names).
#   scripts/check-test-names.sh BINARY SOURCE...
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: check-test-names.sh BINARY SOURCE..." >&2; exit 2; fi
binary=$1; shift
declared=$(cat "$@" | grep -c '^TEST_CASE(' || true)
names=$("$binary" --list-test-names-only | grep -v '^$' || true)
listed=$(printf '%s\n' "$names" | grep -c . || true)
bad=0
if [ "$declared" -ne "$listed" ]; then
  echo "check-test-names: $binary lists $listed test cases, the sources declare $declared"
  bad=1
fi
# ';' splits a CMake list and '\' escapes; a leading '~' or '-' is an exclusion in a
# Catch2 test spec. (catch_discover_tests escapes ',', '[' and ']' itself.)
odd=$(printf '%s\n' "$names" | grep -E '[;\\]|^[~-]' || true)
if [ -n "$odd" ]; then
  echo "check-test-names: names ctest cannot run as written (';', '\\', or a leading '~' or '-'):"
  printf '  %s\n' "$odd"
  bad=1
fi
[ "$bad" -eq 0 ] && echo "check-test-names: $listed test cases, each run by its own ctest entry"
exit "$bad"
