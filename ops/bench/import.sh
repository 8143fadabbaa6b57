#!/usr/bin/env bash
# Contact import benchmark (issue 2): aviso against the Python reference.
#
#   ops/bench/import.sh [ROWS]        # default 1,000,000; run from anywhere
#
# Both importers read the same generated file (cached in target/bench/) into a
# fresh SQLite database, each under /usr/bin/time -v for wall time and peak RSS.
# Each is run RUNS times (default 3: the machine is shared) and the best wall
# time is kept; peak memory is the highest seen. Targets: aviso >= 4x the
# reference's rows/s, aviso's peak RSS < 200 MB.
set -euo pipefail

ROWS=${1:-1000000}
RUNS=${RUNS:-3}
LIMIT=${LIMIT:-1800} # seconds per run: a hung importer must not hold the machine

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE="$ROOT/target/bench"
CSV="$CACHE/contacts-$ROWS.csv"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aviso-bench-import.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

[[ $ROWS =~ ^[0-9]+$ && $ROWS -gt 0 ]] || { echo "usage: $0 [ROWS]" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { apt-get install -y -qq time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }; }
python3 -c 'import phonenumbers' 2>/dev/null || { echo "needs the Python package phonenumbers (pip install phonenumbers)" >&2; exit 1; }

if [[ -n ${AVISO_BIN:-} ]]; then
    BIN=$AVISO_BIN # measure a binary built elsewhere (e.g. a profiling build)
else
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/aviso"
fi

mkdir -p "$CACHE"
if [[ ! -s $CSV ]]; then
    echo "generating $ROWS rows into $CSV (cached for later runs)"
    python3 "$ROOT/../shared/tools/gen_contacts.py" --rows "$ROWS" >"$CSV.tmp"
    mv "$CSV.tmp" "$CSV"
fi

# measure NAME CMD...: runs CMD under /usr/bin/time -v in $WORK/NAME (fresh each
# time), prints "wall_seconds peak_kb" of that run.
measure() {
    local name=$1; shift
    local dir="$WORK/$name"
    rm -rf "$dir" && mkdir -p "$dir"
    # cwd is the fresh dir, so no ./aviso.toml or ./templates of the caller leaks in.
    if ! (cd "$dir" && timeout "$LIMIT" /usr/bin/time -v -o "$dir/time.txt" "$@" >"$dir/out.txt" 2>"$dir/err.txt"); then
        echo "$name failed:" >&2; tail -5 "$dir/err.txt" >&2; cat "$dir/time.txt" >&2 2>/dev/null || true
        return 1
    fi
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
        /Maximum resident set size/ { kb = $2 }
        END { printf "%.3f %d\n", s, kb }' "$dir/time.txt"
}

# best NAME CMD...: RUNS runs; sets BEST_S (lowest wall) and PEAK_KB (highest RSS).
best() {
    local name=$1; shift
    BEST_S=; PEAK_KB=0
    for ((i = 1; i <= RUNS; i++)); do
        read -r s kb < <(measure "$name" "$@")
        echo "  $name run $i: ${s}s, peak ${kb} kB"
        if [[ -z $BEST_S ]] || awk -v a="$s" -v b="$BEST_S" 'BEGIN { exit !(a < b) }'; then BEST_S=$s; fi
        if ((kb > PEAK_KB)); then PEAK_KB=$kb; fi
    done
}

echo "import benchmark: $ROWS rows, $RUNS runs each, $(nproc) cores (shared machine)"
best aviso env AVISO_DATABASE_URL="sqlite://$WORK/aviso/aviso.db" \
    "$BIN" contacts import "$CSV" --list bench --rejects "$WORK/aviso/rejects.csv" --json
AVISO_S=$BEST_S AVISO_KB=$PEAK_KB
echo "  aviso summary: $(cat "$WORK/aviso/out.txt")"
best reference python3 "$ROOT/ops/bench/reference_import.py" "$CSV" "$WORK/reference/ref.db" --list bench
REF_S=$BEST_S REF_KB=$PEAK_KB
echo "  reference summary: $(cat "$WORK/reference/out.txt")"

awk -v n="$ROWS" -v a="$AVISO_S" -v r="$REF_S" -v akb="$AVISO_KB" -v rkb="$REF_KB" 'BEGIN {
    ratio = r / a; mb = akb / 1024
    printf "\n| importer | wall (best of runs) | rows/s | peak RSS |\n|---|---|---|---|\n"
    printf "| aviso | %.2f s | %.0f | %.1f MB |\n", a, n / a, mb
    printf "| Python reference | %.2f s | %.0f | %.1f MB |\n", r, n / r, rkb / 1024
    printf "\nratio aviso/reference: %.2fx (target >= 4x: %s)\n", ratio, (ratio >= 4 ? "met" : "NOT met")
    printf "aviso peak memory: %.1f MB (target < 200 MB: %s)\n", mb, (mb < 200 ? "met" : "NOT met")
}'
