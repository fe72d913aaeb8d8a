#!/usr/bin/env bash
# `make cost`: what one metric costs the pipeline in instructions and
# (simulated) cache misses, counted by callgrind: exact and the same from
# run to run, where timing on a shared machine moves by 10-20%. Compare two
# commits with it before trusting a small timing difference.
#
# Usage: hack/pipeline-cost.sh [REV] (default: the working tree; a commit
# from 300ae91 on, which added the benchmark). Runs
# BenchmarkPipelineIngest (1000x1 and 100x10) under callgrind twice, with
# N1 and N2 messages (default 20000, 60000), and reports the difference per
# message, so the setup and each series' first message cancel out. Needs
# valgrind (apt-get install -y valgrind); about 5 minutes.
#
# Columns: Ir (instructions), D1 (first-level data cache misses, reads and
# writes; 32 KiB, 8-way), LL (last-level misses; 16 MiB, 16-way), of
# Pipeline.Ingest and what it calls, per message; then the same for its
# biggest parts.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "pipeline-cost: valgrind is not installed (apt-get install -y valgrind)" >&2; exit 1; }
rev=${1:-}
n1=${N1:-20000} n2=${N2:-60000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=.
if [ -n "$rev" ]; then
  git worktree add -q --detach "$work/src" "$rev"
  trap 'git worktree remove --force "$work/src"; rm -rf "$work"' EXIT
  src=$work/src
fi
(cd "$src/policies" && go test -c -o "$work/policies.test" .)
for shape in ${SHAPES:-1000x1 100x10}; do
  for n in $n1 $n2; do
    out=$work/$shape.$n.out
    # Callgrind asserts on Go's preemption signals (SIGURG): none are sent
    # (asyncpreemptoff). On a host without RDTSCP, valgrind's CPU still
    # claims it and then cannot run it: Go's runtime is told not to use it
    # (cpu.rdtscp=off; golang.org/x/sys says it does not know the name,
    # which is harmless). A run that dies all the same is tried again.
    for try in 1 2 3 4; do
      rm -f "$out"
      GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off GOGC=off GOMAXPROCS=1 valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=16777216,16,64 \
        --callgrind-out-file="$out" "$work/policies.test" -test.run XXX \
        -test.bench "^BenchmarkPipelineIngest\$/^$shape\$" -test.benchtime "${n}x" >"$out.log" 2>&1 && grep -q '^PASS' "$out.log" && break
      rm -f "$out"
    done
    [ -s "$out" ] || { echo "pipeline-cost: callgrind failed for $shape ($n messages)" >&2; exit 1; }
    callgrind_annotate --inclusive=yes --threshold=100 "$out" >"$out.txt" 2>/dev/null
  done
  echo "== $shape (${rev:-working tree}), per message"
  python3 - "$work/$shape.$n1.out.txt" "$n1" "$work/$shape.$n2.out.txt" "$n2" <<'PY'
import re, sys
def read(path):
    lines = open(path).read().splitlines()
    events = [l for l in lines if l.startswith('Events shown')][0].split(':')[1].split()
    costs = {}
    for l in lines:
        m = re.search(r'\S+\.go:(\S+)( \[.*\])?$', l)
        if not m:
            continue
        # The counts before the file, a zero shown as '.', each count
        # but a zero followed by its percentage in parentheses.
        head = l[:m.start()].replace('(', ' (').split()
        nums = [t for t in head if t == '.' or (t[0].isdigit() and '%' not in t)]
        if len(nums) >= len(events):
            name = m.group(1).replace('github.com/orchhq/orch/policies.', '')
            costs.setdefault(name, dict(zip(events, (0 if t == '.' else int(t.replace(',', '')) for t in nums))))
    return costs
a, na, b, nb = read(sys.argv[1]), int(sys.argv[2]), read(sys.argv[3]), int(sys.argv[4])
if '(*Pipeline).Ingest' not in a or '(*Pipeline).Ingest' not in b:
    sys.exit('pipeline-cost: no Pipeline.Ingest in the profile (a commit before BenchmarkPipelineIngest, 300ae91, has not the benchmark)')
parts = ['(*Pipeline).Ingest', 'decodeInto', '(*Pipeline).apply', '(*Instance).step',
         '(*hclEvaluator).Evaluate', '(*flatEval).Evaluate', '(*scaleThreshold).Evaluate', '(*Windows).MeanHosts', '(*Instance).remember']
print('%-28s %8s %7s %6s' % ('', 'Ir', 'D1', 'LL'))
for name in parts:
    if name not in a or name not in b:
        continue
    d = {e: (b[name][e] - a[name].get(e, 0)) / (nb - na) for e in b[name]}
    d1 = d.get('D1mr', 0) + d.get('D1mw', 0)
    ll = d.get('DLmr', 0) + d.get('DLmw', 0)
    print('%-28s %8.0f %7.1f %6.2f' % (name, d['Ir'], d1, ll))
PY
done
