#!/usr/bin/env bash
# SMS dispatch benchmark (issue 6): aviso's worker against wrk, both sending
# through the same Kannel (bearerbox + smsbox) to its fake SMS centre.
#
#   ops/bench/sms.sh [N]                  # default 20,000 messages
#   CONCURRENCY=32 POOL=16 ops/bench/sms.sh 50000
#
# Untimed setup: N citizens with a phone are imported, an activity and a
# `registro_abierto` SMS campaign are created and started (the outbox is frozen
# and copied fresh for every run). Timed: `aviso worker --once` alone (wall
# time, peak RSS). Then wrk sends sendsms requests of the same text with the
# same number of connections for about as long, and its rate is the reference.
# The two alternate RUNS times (default 3: the machine is shared, and Kannel's
# pace swings by a fifth within minutes); as in the e-mail benchmark, each
# side's best rate is kept, and every pair's ratio is printed too. Neither asks
# Kannel for delivery reports (aviso's provider URL says dlr=false): the
# benchmark measures how fast messages are handed over.
# Target: aviso's rate >= 0.8 of wrk's.
set -euo pipefail

N=${1:-20000}
CONCURRENCY=${CONCURRENCY:-32} # aviso worker --concurrency (its default)
POOL=${POOL:-16}               # HTTP connections: aviso's pool=, wrk -c
RUNS=${RUNS:-3}
LIMIT=${LIMIT:-900}            # seconds per timed run: nothing here may run unbounded

[[ $N =~ ^[0-9]+$ && $N -gt 0 ]] || { echo "usage: $0 [N]" >&2; exit 2; }
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || { echo "RUNS must be a positive number" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aviso-bench-sms.XXXXXX")
PIDS=()
cleanup() {
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; sleep 0.2; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in /usr/sbin/bearerbox /usr/sbin/smsbox /usr/lib/kannel/test/fakesmsc /usr/bin/wrk; do
    [[ -x $tool ]] || { echo "needs $tool: apt-get install kannel kannel-extras wrk" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || apt-get install -y -qq time >/dev/null

if [[ -n ${AVISO_BIN:-} ]]; then
    BIN=$AVISO_BIN
else
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="$ROOT/target/release/aviso"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1" >&2; tail -20 "$WORK"/*.log >&2; return 1
}

ADMIN=$(free_port) BOX=$(free_port) SMSC=$(free_port) SENDSMS=$(free_port)
cat >"$WORK/kannel.conf" <<EOF
group = core
admin-port = $ADMIN
admin-password = adm
smsbox-port = $BOX
box-allow-ip = "127.0.0.1"
dlr-storage = internal
log-file = "$WORK/bearerbox.log"
log-level = 2

group = smsc
smsc = fake
smsc-id = fake
port = $SMSC
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = $SENDSMS
log-file = "$WORK/smsbox.log"
log-level = 2

group = sendsms-user
username = aviso
password = secret
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = "ok"
EOF
/usr/sbin/bearerbox "$WORK/kannel.conf" >>"$WORK/bearerbox.out" 2>&1 &
PIDS+=($!)
wait_port "$BOX"
/usr/sbin/smsbox "$WORK/kannel.conf" >>"$WORK/smsbox.out" 2>&1 &
PIDS+=($!)
wait_port "$SENDSMS"
/usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r "$SMSC" -i 1 -m 0 "123 456 text hi" >"$WORK/fakesmsc.log" 2>&1 &
PIDS+=($!)
sleep 1

# N citizens with US numbers in the fictional 555-01XX block (shared across
# contacts: the SMS centre does not mind).
python3 - "$N" >"$WORK/contacts.csv" <<'EOF'
import sys
n = int(sys.argv[1])
areas = ["213", "310", "415", "646", "702", "305", "312", "512", "602", "720"]
print("id_contacto,nombre,apellidos,entidad,pais,email,lada,telefono,idioma,modalidad")
for i in range(n):
    print(f"S{i:08d},Persona,Apellido,OAX,US,,1,{areas[i % 10]}55501{(i // 10) % 100:02d},{'es' if i % 2 else 'en'},postal")
EOF

mkdir -p "$WORK/base"
cd "$WORK/base"
export AVISO_DATABASE_URL="sqlite://$WORK/base/aviso.db"
export AVISO_SMS_PROVIDER="kannel://127.0.0.1:$SENDSMS?from=INE&pool=$POOL&dlr=false"
export AVISO_SMS_USERNAME=aviso AVISO_SMS_PASSWORD=secret AVISO_LOG=warn
"$BIN" contacts import "$WORK/contacts.csv" --list bench --rejects "$WORK/rejects.csv" >/dev/null
"$BIN" activity create --code SMS-BENCH --name "Benchmark SMS" --channel sms --programmed "$N" >/dev/null
id=$("$BIN" campaign create --activity SMS-BENCH --template registro_abierto --list bench --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
"$BIN" campaign start "$id" >/dev/null

# The reference: the same request (the Spanish text as aviso sent it) from wrk.
text=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("INE: Vota desde el extranjero por la Gubernatura de Oaxaca. Registrate en votoextranjero.mx hasta el 10 de marzo de 2022 y elige: correo o internet."))')
path="/cgi-bin/sendsms?username=aviso&password=secret&from=INE&to=%2B12135550100&text=$text&charset=UTF-8&coding=0"

echo "SMS benchmark: N=$N, aviso --concurrency $CONCURRENCY, pool=$POOL, wrk -t2 -c $POOL, $RUNS runs each, alternating, $(nproc) cores (shared machine)"
# PROFILE=FILE records where the worker spends its time (perf report -i FILE).
profile=()
[[ -n ${PROFILE:-} ]] && profile=(perf record -F 999 -g -o "$PROFILE" --)
best_aviso=0 best_wrk=0 peak_kb=0 ratios=()
for ((i = 1; i <= RUNS; i++)); do
    run="$WORK/run"
    rm -rf "$run" && mkdir -p "$run"
    cp "$WORK"/base/aviso.db* "$run/" # the same N queued messages every run
    cd "$run"
    export AVISO_DATABASE_URL="sqlite://$run/aviso.db"
    before=$(grep -c "Got message" "$WORK/fakesmsc.log" || true)
    tw0=$(ss -tan state time-wait "( dport = :$SENDSMS or sport = :$SENDSMS )" | tail -n +2 | wc -l)
    start=$(date +%s.%N)
    if ! /usr/bin/time -v -o "$run/time.txt" timeout "$LIMIT" "${profile[@]}" \
        "$BIN" worker --once --concurrency "$CONCURRENCY" >/dev/null 2>"$run/err.txt"; then
        echo "aviso worker failed:" >&2; tail -5 "$run/err.txt" >&2; exit 1
    fi
    end=$(date +%s.%N)
    aviso_secs=$(python3 -c "print($end - $start)")
    aviso_rate=$(python3 -c "print(round($N / $aviso_secs))")
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$run/time.txt")
    cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f s user + %.2f s system", u, s}' "$run/time.txt")
    # Connections aviso closed, roughly: the previous wrk's closing ones linger
    # in TIME_WAIT for 60 s and may expire meanwhile.
    tw=$(($(ss -tan state time-wait "( dport = :$SENDSMS or sport = :$SENDSMS )" | tail -n +2 | wc -l) - tw0))
    tw=$((tw < 0 ? 0 : tw))
    sent=$("$BIN" campaign status "$id" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"]["sent"])')
    sleep 1
    got=$(($(grep -c "Got message" "$WORK/fakesmsc.log" || true) - before))
    [[ $sent == "$N" ]] || { echo "aviso sent $sent of $N" >&2; exit 1; }

    duration=$(python3 -c "print(max(5, min(60, round($aviso_secs))))")
    wrk -t2 -c"$POOL" -d"${duration}s" "http://127.0.0.1:$SENDSMS$path" >"$run/wrk.txt"
    wrk_rate=$(awk '/Requests\/sec/ {print int($2)}' "$run/wrk.txt")
    ratio=$(python3 -c "print(round($aviso_rate / $wrk_rate, 2))")
    ratios+=("$ratio")
    echo "  run $i: aviso $sent sent (fakesmsc got $got parts) in ${aviso_secs%.*}.$(printf '%s' "${aviso_secs#*.}" | cut -c1-2) s = $aviso_rate msg/s, peak RSS $((kb / 1024)) MB, CPU $cpu, connections closed $tw"
    echo "         wrk $wrk_rate requests/s ($(awk '/requests in/ {print $1}' "$run/wrk.txt") requests in ${duration} s); this pair's ratio $ratio"
    if ((aviso_rate > best_aviso)); then best_aviso=$aviso_rate; fi
    if ((wrk_rate > best_wrk)); then best_wrk=$wrk_rate; fi
    if ((kb > peak_kb)); then peak_kb=$kb; fi
done

ratio=$(python3 -c "print(round($best_aviso / $best_wrk, 2))")
median=$(python3 -c "import statistics, sys; print(round(statistics.median(float(r) for r in sys.argv[1:]), 2))" "${ratios[@]}")
echo
echo "| sender (N=$N, $POOL connections) | msg/s (best of $RUNS) |"
echo "|---|---|"
echo "| aviso worker --once | $best_aviso |"
echo "| wrk | $best_wrk |"
echo
echo "ratio aviso/wrk: $ratio (target >= 0.8: $(python3 -c "print('met' if $ratio >= 0.8 else 'NOT met')")); median of the $RUNS pairs: $median"
echo "aviso peak memory: $((peak_kb / 1024)) MB"
