# Helpers shared by the dispatch benchmarks (email.sh, workers.sh); sourced.
# They use the caller's globals: BIN (the aviso binary), WORK (a scratch
# directory), CACHE (generated inputs kept between runs) and PIDS (background
# processes the caller's cleanup stops).

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_sink PORT [ARGS...]: smtp-sink on 127.0.0.1:PORT, waits until it listens.
start_sink() {
    local port=$1; shift
    /usr/sbin/smtp-sink -u root "$@" "127.0.0.1:$port" 1000 >>"$WORK/sink.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "smtp-sink did not start on 127.0.0.1:$port" >&2; cat "$WORK/sink.log" >&2; return 1
}

# contacts_csv N: prints the path of a CSV of N citizens, all with an e-mail
# and no phone (the phone check is the import benchmark's business; here it
# would only slow the untimed setup).
contacts_csv() {
    local n=$1 out="$CACHE/email-contacts-$1.csv"
    if [[ ! -s $out ]]; then
        mkdir -p "$CACHE"
        python3 - "$n" >"$out.tmp" <<'PY'
import csv, sys
n = int(sys.argv[1])
first = ["María", "José", "Juan", "Guadalupe", "Ana", "Luis", "Sofía", "Héctor", "Itzel", "Tomás"]
last = ["Hernández", "García", "Martínez", "López", "González", "Pérez", "Cruz", "Núñez"]
ents, mods = ["AGS", "DGO", "OAX", "TAM"], ["electronica", "postal"]
w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["id_contacto", "nombre", "apellidos", "entidad", "pais", "email", "lada", "telefono",
            "idioma", "tipo_credencial", "poblacion", "modalidad"])
for i in range(1, n + 1):
    w.writerow([f"C{i:08d}", first[i % 10], f"{last[i % 8]} {last[(i // 8) % 8]}", ents[i % 4], "US",
                f"persona.{i}@example.com", "", "", "en" if i % 7 == 0 else "es", "CPVE",
                "primaria", mods[i % 2]])
PY
        mv "$out.tmp" "$out"
    fi
    echo "$out"
}

# prepare DIR CSV PROVIDER [DATABASE_URL]: a workspace in DIR (database: the
# URL, default DIR/aviso.db) with the contacts imported and a started e-mail
# campaign, its outbox frozen.
prepare() {
    local dir=$1 csv=$2 url=$3 db=${4:-sqlite://$1/aviso.db}
    mkdir -p "$dir"
    (
        cd "$dir" # no ./aviso.toml or ./templates of the caller leaks in
        export AVISO_DATABASE_URL=$db AVISO_EMAIL_PROVIDER=$url
        "$BIN" contacts import "$csv" --list bench --rejects "$dir/rejects.csv" >/dev/null
        "$BIN" activity create --code EMAIL-BENCH --name "Benchmark e-mail" --channel email \
            --programmed "$(($(wc -l <"$csv") - 1))" >/dev/null
        id=$("$BIN" campaign create --activity EMAIL-BENCH --template registro_abierto \
            --channel email --list bench --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
        "$BIN" campaign start "$id" >/dev/null
    )
}
