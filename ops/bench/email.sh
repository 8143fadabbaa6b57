#!/usr/bin/env bash
# E-mail dispatch benchmark (issue 4): aviso's worker against Postfix's smtp-source,
# both sending to the same smtp-sink on loopback.
#
#   ops/bench/email.sh [N]                        # default 100,000 messages
#   SESSIONS=8 CONCURRENCY=32 ops/bench/email.sh 1000000
#   SMTP_PARAMS='&dkim=s1._domainkey.votoextranjero.example&dkim_key=/tmp/k.pem' \
#       ops/bench/email.sh 20000                  # every message DKIM-signed
#
# Untimed setup: N citizens with e-mail are imported into a workspace, an activity
# and a `registro_abierto` e-mail campaign are created and started (the outbox is
# frozen). That database is copied fresh for every run, so each run starts from
# the same N queued messages. Timed: `aviso worker --once` alone, under
# /usr/bin/time -v (wall time, peak RSS). Then `smtp-source -d` with the same
# number of SMTP sessions sends N messages of the same size to the same sink.
# Each side runs RUNS times (default 3: the machine is shared); the best time is
# kept, and the highest peak RSS. Targets: ratio >= 0.7 at N = 100,000; aviso's
# peak RSS <= 64 MB and flat from 10,000 to 1,000,000.
set -euo pipefail

N=${1:-100000}
SESSIONS=${SESSIONS:-8}       # SMTP connections: aviso's pool=S, smtp-source -s S
SMTP_PARAMS=${SMTP_PARAMS:-}  # more provider settings for aviso, e.g. &dkim=…&dkim_key=…
CONCURRENCY=${CONCURRENCY:-32} # aviso worker --concurrency (its default)
RUNS=${RUNS:-3}
LIMIT=${LIMIT:-1800}          # seconds per timed run: nothing here may run unbounded

[[ $N =~ ^[0-9]+$ && $N -gt 0 ]] || { echo "usage: $0 [N]" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE="$ROOT/target/bench"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aviso-bench-email.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in /usr/sbin/smtp-sink /usr/sbin/smtp-source; do
    [[ -x $tool ]] || { echo "needs $tool: apt-get install postfix (see ../shared/peers/README.md)" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { apt-get install -y -qq time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }; }

if [[ -n ${AVISO_BIN:-} ]]; then
    BIN=$AVISO_BIN # measure a binary built elsewhere (e.g. a profiling build)
else
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/aviso"
fi

# free_port, start_sink, contacts_csv, prepare
source "$ROOT/ops/bench/lib.sh"

# Size of one message as aviso sends it, and of smtp-source's own headers, both
# read back from a dumping sink: smtp-source -l gets the difference, so both
# sides put about the same number of bytes on the wire.
PROBE_PORT=$(free_port)
start_sink "$PROBE_PORT" -d "$WORK/probe/mail/%M."
head -2 "$(contacts_csv 1)" >"$WORK/one.csv"
prepare "$WORK/probe/ws" "$WORK/one.csv" "smtp://127.0.0.1:$PROBE_PORT?tls=none&pool=1$SMTP_PARAMS"
(cd "$WORK/probe/ws" && AVISO_DATABASE_URL="sqlite://$WORK/probe/ws/aviso.db" \
    AVISO_EMAIL_PROVIDER="smtp://127.0.0.1:$PROBE_PORT?tls=none&pool=1$SMTP_PARAMS" \
    timeout 60 "$BIN" worker --once >/dev/null 2>&1)
dump_size() { # bytes of the message in a dump, without the X-* lines smtp-sink adds
    grep -v -E '^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):' "$1" | wc -c
}
AVISO_FILE=$(ls "$WORK"/probe/mail/* | head -1)
MSG_BYTES=$(dump_size "$AVISO_FILE")
mv "$AVISO_FILE" "$WORK/aviso-message.eml"
timeout 60 /usr/sbin/smtp-source -m 1 -l 1 -f a@example.org -t b@example.com "127.0.0.1:$PROBE_PORT"
sleep 0.2
SRC_HEADERS=$(($(dump_size "$(ls "$WORK"/probe/mail/* | head -1)") - 1)) # minus the 1-byte payload
PAYLOAD=$((MSG_BYTES > SRC_HEADERS ? MSG_BYTES - SRC_HEADERS : MSG_BYTES))

PORT=$(free_port)
start_sink "$PORT"
URL="smtp://127.0.0.1:$PORT?tls=none&pool=$SESSIONS$SMTP_PARAMS"
CSV=$(contacts_csv "$N")
echo "e-mail benchmark: N=$N, sessions S=$SESSIONS, worker concurrency C=$CONCURRENCY, $RUNS runs each, $(nproc) cores (shared machine)"
echo "  message: aviso ${MSG_BYTES} bytes (headers + text + HTML); smtp-source -l $PAYLOAD (+ its own ${SRC_HEADERS} bytes of headers)"
echo "  setup (untimed): import $N contacts, create and start the campaign"
prepare "$WORK/base" "$CSV" "$URL"

best_aviso= peak_kb=0
for ((i = 1; i <= RUNS; i++)); do
    run="$WORK/run"
    rm -rf "$run" && mkdir -p "$run"
    cp "$WORK"/base/aviso.db* "$run/" # the same N queued messages every run
    if ! (cd "$run" && AVISO_DATABASE_URL="sqlite://$run/aviso.db" AVISO_EMAIL_PROVIDER=$URL \
        timeout "$LIMIT" /usr/bin/time -v -o "$run/time.txt" \
        "$BIN" worker --once --concurrency "$CONCURRENCY" --json >"$run/out.json" 2>"$run/err.txt"); then
        echo "aviso worker failed:" >&2; tail -5 "$run/err.txt" >&2; exit 1
    fi
    sent=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$run/out.json")
    [[ $sent == "$N" ]] || { echo "aviso sent $sent of $N: $(cat "$run/out.json")" >&2; exit 1; }
    read -r s kb < <(awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
        /Maximum resident set size/ { kb = $2 }
        END { printf "%.3f %d\n", s, kb }' "$run/time.txt")
    echo "  aviso run $i: ${s}s, $(awk -v n="$N" -v s="$s" 'BEGIN { printf "%.0f", n / s }') msg/s, peak ${kb} kB"
    if [[ -z $best_aviso ]] || awk -v a="$s" -v b="$best_aviso" 'BEGIN { exit !(a < b) }'; then best_aviso=$s; fi
    if ((kb > peak_kb)); then peak_kb=$kb; fi
done

best_src=
for ((i = 1; i <= RUNS; i++)); do
    t0=$(date +%s.%N)
    timeout "$LIMIT" /usr/sbin/smtp-source -d -s "$SESSIONS" -m "$N" -l "$PAYLOAD" \
        -f a@example.org -t b@example.com "127.0.0.1:$PORT"
    s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
    echo "  smtp-source run $i: ${s}s, $(awk -v n="$N" -v s="$s" 'BEGIN { printf "%.0f", n / s }') msg/s"
    if [[ -z $best_src ]] || awk -v a="$s" -v b="$best_src" 'BEGIN { exit !(a < b) }'; then best_src=$s; fi
done

awk -v n="$N" -v a="$best_aviso" -v r="$best_src" -v kb="$peak_kb" -v S="$SESSIONS" -v C="$CONCURRENCY" 'BEGIN {
    ratio = r / a; mb = kb / 1024
    printf "\n| sender (N=%d, S=%d, C=%d) | wall (best) | msg/s |\n|---|---|---|\n", n, S, C
    printf "| aviso worker --once | %.2f s | %.0f |\n", a, n / a
    printf "| smtp-source -d | %.2f s | %.0f |\n", r, n / r
    printf "\nratio aviso/smtp-source: %.2f (target >= 0.7 at N = 100,000: %s)\n", ratio, (ratio >= 0.7 ? "met" : "NOT met")
    printf "aviso peak memory: %.1f MB (target <= 64 MB: %s)\n", mb, (mb <= 64 ? "met" : "NOT met")
}'
