#!/usr/bin/env bash
# Scale-out benchmark (issue 18): several `aviso worker` processes sharing one
# PostgreSQL database, sending e-mail to Postfix's smtp-sink on loopback.
#
#   ops/bench/workers.sh [N] [BIG]          # defaults: N = 100,000, BIG = 1,000,000
#   PHASES="kill speed" ops/bench/workers.sh 10000
#   CONCURRENCY=32 SESSIONS=8 LEASE=15s LIMIT=1800 ops/bench/workers.sh
#   PROFILE=1 PHASES=speed ops/bench/workers.sh   # and where the CPU went
#
# Three phases (PHASES, default all three):
#   kill   3 workers on PostgreSQL send an N-message campaign to a sink that
#          keeps every message. One is killed (SIGKILL) once a quarter is sent,
#          another stopped with SIGTERM at half, the third finishes. Reported:
#          the campaign's Message-IDs missing at the sink (must be 0), the
#          duplicates against the documented bound (each crashed worker:
#          concurrency + 256; a stopped one: none), and `campaign status`
#          reconciled (counts add up to the total; sent = distinct Message-IDs).
#   speed  the same N messages by 1, 2 and 3 workers (`--once`) on PostgreSQL
#          and by 1 on SQLite, no kills: wall time, messages/s, and the CPU
#          seconds of the workers, of PostgreSQL (server and backends) and of
#          smtp-sink, to show which of them is the ceiling.
#          With PROFILE=1, each run is also sampled system-wide by `perf
#          record -e cpu-clock` (it works where hardware counters do not) and
#          followed by its CPU by process and the top functions of
#          PostgreSQL, aviso and smtp-sink: where the ceiling is.
#   rss    peak RSS of one worker (`/usr/bin/time`) through a BIG-message
#          campaign on SQLite and on PostgreSQL (target <= 64 MB); ENGINES
#          chooses (default "sqlite postgres").
#
# Disk: at BIG = 1,000,000 the PostgreSQL cluster grows to about 2 GB (the
# SQLite database is removed before it starts); on a full disk put the
# scratch directory in memory with TMPDIR=/dev/shm.
#
# Setup is untimed: contacts imported, campaign created and started (outbox
# frozen) once per database engine and size; each PostgreSQL run gets a fresh
# copy of that database (CREATE DATABASE ... TEMPLATE), each SQLite run a copy
# of the file. PostgreSQL is a private cluster (ops/pg) in a scratch directory.
# Every run is bounded by LIMIT seconds; everything started is stopped on exit.
set -euo pipefail

N=${1:-100000}
BIG=${2:-1000000}
PHASES=${PHASES:-kill speed rss}
SESSIONS=${SESSIONS:-8}       # SMTP connections per worker (pool=S)
CONCURRENCY=${CONCURRENCY:-32} # aviso worker --concurrency (its default)
LEASE=${LEASE:-15s}           # kill phase: how long the crashed worker's messages wait
LIMIT=${LIMIT:-1800}          # seconds per timed run: nothing here may run unbounded
RECORD_BATCH=256              # aviso's outcomes that may wait for their commit

[[ $N =~ ^[0-9]+$ && $N -ge 100 && $BIG =~ ^[0-9]+$ ]] || { echo "usage: $0 [N >= 100] [BIG]" >&2; exit 2; }
for phase in $PHASES; do
    [[ $phase == kill || $phase == speed || $phase == rss ]] || { echo "unknown phase $phase (kill, speed, rss)" >&2; exit 2; }
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE="$ROOT/target/bench"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aviso-bench-workers.XXXXXX")
chmod 711 "$WORK" # the PostgreSQL server runs as `postgres` and keeps its cluster in here
PIDS=()
# shellcheck source=../pg
source "$ROOT/ops/pg"
cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    pg_stop "$WORK/pg" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in /usr/sbin/smtp-sink psql; do
    command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install postfix postgresql (see ../shared/peers/README.md)" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { apt-get install -y -qq time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }; }

if [[ -n ${AVISO_BIN:-} ]]; then
    BIN=$AVISO_BIN
else
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/aviso"
fi
# free_port, start_sink, contacts_csv, prepare
source "$ROOT/ops/bench/lib.sh"

eval "$(pg_start "$WORK/pg")"
PG=$AVISO_TEST_POSTGRES_URL
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")
HZ=$(getconf CLK_TCK)

sql() { PGOPTIONS="-c client_min_messages=warning" psql "$1" -X -A -t -q -v ON_ERROR_STOP=1 -c "$2"; }
pg_db() { echo "${PG%/*}/$1"; }
# fresh_pg NAME TEMPLATE: a new database copied from TEMPLATE; prints its URL.
fresh_pg() {
    sql "$PG" "DROP DATABASE IF EXISTS $1" && sql "$PG" "CREATE DATABASE $1 TEMPLATE $2" && pg_db "$1"
}

# CPU clock ticks a process used, with its children that have exited.
ticks_of() {
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }' || echo 0
}
# PostgreSQL: the server and its live processes; backends that exited are in
# the server's children's time.
pg_ticks() {
    local total pid
    total=$(ticks_of "$PG_PID")
    for pid in $(pgrep -P "$PG_PID"); do total=$((total + $(ticks_of "$pid"))); done
    echo "$total"
}
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# run_in DIR DB PROVIDER COMMAND...: runs COMMAND in DIR against the database
# and provider, in place of the calling (sub)shell, so that `$!` is its pid.
run_in() {
    cd "$1" || return 1
    export AVISO_DATABASE_URL=$2 AVISO_EMAIL_PROVIDER=$3 AVISO_LOG=warn
    shift 3
    exec "$@"
}
campaign_id() { sql "$1" "SELECT min(id) FROM campaigns"; }
status_json() { (run_in "$WORK" "$1" "smtp://127.0.0.1:1?tls=none" "$BIN" campaign status "$2" --json); }
sent_count() { sql "$1" "SELECT count(*) FROM messages WHERE status = 'sent'"; }
# wait_sent DB COUNT: until COUNT messages are recorded sent (at most LIMIT s).
wait_sent() {
    local deadline=$((SECONDS + LIMIT))
    until (($(sent_count "$1") >= $2)); do
        ((SECONDS < deadline)) || { echo "only $(sent_count "$1") of $2 sent after $LIMIT s" >&2; exit 1; }
        sleep 0.5
    done
}

echo "workers benchmark: N=$N, BIG=$BIG, phases: $PHASES; worker concurrency C=$CONCURRENCY, SMTP sessions S=$SESSIONS per worker"
echo "  machine: $(nproc) cores (shared), load average at start: $(load)"
CSV=$(contacts_csv "$N")
SPEED_PORT=$(free_port)
start_sink "$SPEED_PORT"
SPEED_SINK_PID=${PIDS[-1]}
SPEED_URL="smtp://127.0.0.1:$SPEED_PORT?tls=none&pool=$SESSIONS"

BASE_PG_READY=
base_pg() {
    [[ -n $BASE_PG_READY ]] && return 0
    local t0=$SECONDS
    sql "$PG" "CREATE DATABASE base_n"
    prepare "$WORK/base-pg" "$CSV" "$SPEED_URL" "$(pg_db base_n)"
    sql "$(pg_db base_n)" "VACUUM ANALYZE messages" # every copy starts with the planner's statistics
    echo "  setup (untimed): $N contacts and a started campaign in PostgreSQL, $((SECONDS - t0)) s"
    BASE_PG_READY=1
}

kill_phase() {
    base_pg
    local port url db id dir pids=() i held released stopped_exit
    port=$(free_port)
    start_sink "$port" -d "$WORK/kill-mail/%H/%M."
    url="smtp://127.0.0.1:$port?tls=none&pool=$SESSIONS"
    db=$(fresh_pg kill_n base_n)
    id=$(campaign_id "$db")
    dir="$WORK/kill" && mkdir -p "$dir"
    echo
    echo "kill -9 and SIGTERM: 3 workers, $N messages, lease $LEASE, load average $(load)"
    for i in 1 2 3; do
        # No `timeout` in between: the pid must be the worker's own, whose
        # worker id is host:pid:random. wait_sent bounds the run instead.
        (run_in "$dir" "$db" "$url" "$BIN" worker --json --lease "$LEASE" \
            --concurrency "$CONCURRENCY" >"$dir/w$i.json" 2>"$dir/w$i.err") &
        pids+=($!)
        PIDS+=($!)
    done
    wait_sent "$db" $((N / 4))
    kill -KILL "${pids[0]}"
    wait "${pids[0]}" 2>/dev/null || true
    held=$(sql "$db" "SELECT count(*) FROM messages WHERE status = 'sending' AND lease_owner LIKE '%:${pids[0]}:%'")
    echo "  worker 1 killed (SIGKILL) at $(sent_count "$db") sent, holding $held messages"
    wait_sent "$db" $((N / 2))
    kill -TERM "${pids[1]}"
    stopped_exit=0
    wait "${pids[1]}" || stopped_exit=$?
    released=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["released"])' "$dir/w2.json")
    echo "  worker 2 stopped (SIGTERM) at $(sent_count "$db") sent: exit $stopped_exit, released $released, leases left $(
        sql "$db" "SELECT count(*) FROM messages WHERE status = 'sending' AND lease_owner LIKE '%:${pids[1]}:%'")"
    wait_sent "$db" "$N"
    kill -TERM "${pids[2]}"
    wait "${pids[2]}" || { echo "worker 3 failed: $(tail -3 "$dir/w3.err")" >&2; exit 1; }
    echo "  worker 3 finished the campaign; load average $(load)"

    grep -rh -m1 -i '^Message-ID:' "$WORK/kill-mail" | sed -E 's/.*<aviso\.([0-9]+\.[0-9]+)@.*/\1/' |
        sort >"$dir/received"
    sort -u "$dir/received" >"$dir/distinct"
    sql "$db" "SELECT run_id || '.' || id FROM messages" | sort >"$dir/expected"
    local copies distinct missing strangers duplicates bound
    copies=$(wc -l <"$dir/received")
    distinct=$(wc -l <"$dir/distinct")
    missing=$(comm -23 "$dir/expected" "$dir/distinct" | wc -l)
    strangers=$(comm -13 "$dir/expected" "$dir/distinct" | wc -l)
    duplicates=$((copies - distinct))
    bound=$((CONCURRENCY + RECORD_BATCH))
    status_json "$db" "$id" >"$dir/status.json"
    python3 - "$dir/status.json" "$distinct" "$N" <<'PY'
import json, sys
s, distinct, n = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
counts = s["counts"]
adds_up = sum(counts.values()) == s["total"] == n
print(f"  campaign status: total {s['total']}, sent {counts['sent']}, state {s['state']}; "
      f"counts add up to the total: {'yes' if adds_up else 'NO'}; "
      f"sent = distinct Message-IDs at the sink ({distinct}): {'yes' if counts['sent'] == distinct else 'NO'}")
sys.exit(0 if adds_up and counts["sent"] == distinct else 1)
PY
    echo "  sink: $copies messages, $distinct distinct Message-IDs of $N; missing $missing, not of the campaign $strangers"
    echo "  duplicates: $duplicates (bound for one crashed worker: C + $RECORD_BATCH = $bound: $(
        ((duplicates <= bound)) && echo within || echo EXCEEDED))"
    sql "$PG" "DROP DATABASE kill_n"
    rm -rf "$WORK/kill-mail"
    ((missing == 0 && strangers == 0 && duplicates <= bound)) || exit 1
}

# run_workers K DB PROVIDER LABEL: K `worker --once` at once; prints a table row.
run_workers() {
    local k=$1 db=$2 url=$3 label=$4 dir="$WORK/speed-$4" pids=() i t0 t1 pg0 pg1 sink0 sink1
    mkdir -p "$dir"
    if [[ -n ${PROFILE:-} ]]; then
        perf record -q -e cpu-clock -F 499 -a -g -o "$dir/perf.data" 2>"$dir/perf.err" &
        PERF_PID=$!
        PIDS+=("$PERF_PID")
        sleep 1 # perf maps the running processes before it samples
    fi
    pg0=$(pg_ticks) sink0=$(ticks_of "$SPEED_SINK_PID") t0=$(now)
    for ((i = 1; i <= k; i++)); do
        (run_in "$dir" "$db" "$url" timeout -s KILL "$LIMIT" /usr/bin/time -f '%e %U %S %M' -o "$dir/time$i" \
            "$BIN" worker --once --json --concurrency "$CONCURRENCY" >"$dir/w$i.json" 2>"$dir/w$i.err") &
        pids+=($!)
    done
    for ((i = 1; i <= k; i++)); do
        wait "${pids[i - 1]}" || { echo "$label: worker $i failed: $(tail -3 "$dir/w$i.err")" >&2; exit 1; }
    done
    t1=$(now) pg1=$(pg_ticks) sink1=$(ticks_of "$SPEED_SINK_PID")
    if [[ -n ${PROFILE:-} ]]; then
        kill -INT "$PERF_PID" && wait "$PERF_PID" || true
    fi
    python3 - "$dir" "$k" "$N" "$t0" "$t1" "$(((pg1 - pg0)))" "$((sink1 - sink0))" "$HZ" "$label" "$(load)" <<'PY'
import json, sys
d, k, n, t0, t1, pg, sink, hz, label, load = sys.argv[1:]
k, n, hz = int(k), int(n), int(hz)
sent = sum(json.load(open(f"{d}/w{i}.json"))["sent"] for i in range(1, k + 1))
if sent != n:
    sys.exit(f"{label}: the workers sent {sent} of {n}")
times = [open(f"{d}/time{i}").read().split() for i in range(1, k + 1)]
wall = float(t1) - float(t0)
aviso = sum(float(t[1]) + float(t[2]) for t in times)
rss = max(int(t[3]) for t in times) / 1024
pg, sink = int(pg) / hz, int(sink) / hz
busy = (aviso + pg + sink) / wall
print(f"| {label} | {wall:.2f} s | {n / wall:,.0f} | {aviso:.1f} s ({aviso / n * 1e6:.0f} us/msg) "
      f"| {pg:.1f} s ({pg / n * 1e6:.0f} us/msg) | {sink:.2f} s | {busy:.2f} | {rss:.1f} MB | {load} |")
PY
    [[ -z ${PROFILE:-} ]] || profile_report "$dir/perf.data" "$label"
}

# profile_report PERF_DATA LABEL: the samples by process, then each busy
# process's top functions (self time; children folded in by name).
profile_report() {
    local data=$1 label=$2 comm
    (
        set +o pipefail # `head` closes the pipe on perf report, which is fine
        echo "profile of '$label' (perf, cpu-clock at 499 Hz, every CPU): samples by process"
        perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8
        # aviso's threads: main, tokio's runtime, and sqlx's SQLite worker.
        for comm in postgres aviso,tokio-rt-worker,sqlx-sqlite-wor smtp-sink; do
            echo "  top functions of $comm (share of all samples):"
            perf report -i "$data" --no-children --comms "$comm" --sort dso,sym --stdio -g none 2>/dev/null |
                grep -E '^ +[0-9]' | head -8 | cut -c1-150
        done
    ) | sed 's/^/    /' >&2
}

speed_phase() {
    base_pg
    local k db
    echo
    echo "throughput: $N messages, no kills; CPU = user + system seconds; cores busy = (aviso + PostgreSQL + sink) / wall"
    echo "  setup (untimed): $N contacts and a started campaign in SQLite"
    prepare "$WORK/base-sqlite" "$CSV" "$SPEED_URL"
    echo
    echo "| workers | wall | msg/s | aviso CPU | PostgreSQL CPU | smtp-sink CPU | cores busy | peak RSS (max) | load average after |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for k in 1 2 3; do
        db=$(fresh_pg "speed_$k" base_n)
        run_workers "$k" "$db" "$SPEED_URL" "$k on PostgreSQL"
        sql "$PG" "DROP DATABASE speed_$k"
    done
    rm -rf "$WORK/sqlite-run" && mkdir -p "$WORK/sqlite-run"
    cp "$WORK"/base-sqlite/aviso.db* "$WORK/sqlite-run/"
    run_workers 1 "sqlite://$WORK/sqlite-run/aviso.db" "$SPEED_URL" "1 on SQLite"
}

rss_phase() {
    local csv db engine dir kb
    csv=$(contacts_csv "$BIG")
    echo
    echo "peak RSS of one worker through $BIG messages (target <= 64 MB)"
    for engine in ${ENGINES:-sqlite postgres}; do
        dir="$WORK/rss-$engine"
        if [[ $engine == postgres ]]; then
            sql "$PG" "CREATE DATABASE rss_big"
            db=$(pg_db rss_big)
        else
            db="sqlite://$dir/aviso.db"
        fi
        local t0=$SECONDS
        prepare "$dir" "$csv" "$SPEED_URL" "$db"
        echo "  $engine: setup (untimed) $((SECONDS - t0)) s"
        (run_in "$dir" "$db" "$SPEED_URL" timeout -s KILL "$LIMIT" /usr/bin/time -f '%e %U %S %M' -o "$dir/time" \
            "$BIN" worker --once --json --concurrency "$CONCURRENCY" >"$dir/w.json" 2>"$dir/w.err") ||
            { echo "$engine: worker failed: $(tail -3 "$dir/w.err")" >&2; exit 1; }
        python3 - "$dir" "$BIG" "$engine" "$(load)" <<'PY'
import json, sys
d, n, engine, load = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sent = json.load(open(f"{d}/w.json"))["sent"]
wall, user, system, kb = open(f"{d}/time").read().split()
mb = int(kb) / 1024
print(f"  {engine}: {sent:,} of {n:,} sent in {float(wall):.1f} s ({sent / float(wall):,.0f} msg/s, "
      f"CPU {float(user) + float(system):.1f} s), peak RSS {mb:.1f} MB "
      f"(target <= 64 MB: {'met' if mb <= 64 else 'NOT met'}); load average {load}")
sys.exit(0 if sent == n else 1)
PY
        [[ $engine == postgres ]] && sql "$PG" "DROP DATABASE rss_big"
        rm -rf "$dir"
    done
}

for phase in $PHASES; do
    "${phase}_phase"
done
echo
echo "load average at the end: $(load)"
