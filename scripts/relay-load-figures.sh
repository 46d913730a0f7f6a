#!/usr/bin/env bash
# smtp-load figures on loopback: smtp-load's own sink and Postfix's smtp-sink, same load, same
# run. (a) 1 message per connection, (b) 100 messages per connection, plaintext; (c) STARTTLS
# handshakes only and (d) 1 message per connection over STARTTLS, own sink (smtp-sink has no TLS).
# A second client not written by this project: (a) also with Postfix's smtp-source (plaintext,
# HELO, no pipelining) against both sinks, so the sink figures do not rest on smtp-load alone.
# Usage: scripts/relay-load-figures.sh [N_CONNECTIONS]   (release build of smtp-load)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
cargo build --release -q -p relay --bin smtp-load
BIN=target/release/smtp-load
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

# A test CA and a localhost server certificate signed by it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=smtp-load figures CA" -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$TMP/key.pem" -out "$TMP/req.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TMP/ext"
openssl x509 -req -in "$TMP/req.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 2 -extfile "$TMP/ext" -out "$TMP/cert.pem" 2>/dev/null

"$BIN" sink --listen 127.0.0.1:0 --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" >"$TMP/sink.out" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$TMP/sink.out" 2>/dev/null && break; sleep 0.05; done
OWN=$(grep -o '127.0.0.1:[0-9]*' "$TMP/sink.out")

PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
USER_OPT=(); [ "$(id -u)" = 0 ] && USER_OPT=(-u nobody)
/usr/sbin/smtp-sink "${USER_OPT[@]}" "127.0.0.1:$PORT" 256 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
PF=127.0.0.1:$PORT

run() { # label server args...
  local label=$1 server=$2; shift 2
  { "$BIN" --server "$server" --json "$@" || true; } | python3 -c "import json,sys;d=json.load(sys.stdin);print(f'$label: accepted {d[\"accepted\"]} failed_conn {d[\"failed_connections\"]} {d[\"msgs_per_sec\"]:.0f} msgs/s {d[\"handshakes_per_sec\"]:.0f} handshakes/s p50 {d[\"latency_ms\"][\"p50\"]:.2f} ms p99 {d[\"latency_ms\"][\"p99\"]:.2f} ms')"
}
run "(a) own sink     1 msg/conn   " "$OWN" -n "$N" -m 1 -c 50
run "(a) smtp-sink    1 msg/conn   " "$PF" -n "$N" -m 1 -c 50
run "(b) own sink     100 msgs/conn" "$OWN" -n $((N / 50)) -m 100 -c 20
run "(b) smtp-sink    100 msgs/conn" "$PF" -n $((N / 50)) -m 100 -c 20
run "(c) own sink     handshake    " "$OWN" -n "$N" -c 50 --tls starttls --ca-file "$TMP/ca.pem" --handshake-only
run "(d) own sink     TLS 1 msg    " "$OWN" -n "$N" -m 1 -c 50 --tls starttls --ca-file "$TMP/ca.pem"
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
source_run() { # label host:port -- N messages, one per connection, 50 at a time, 1024 bytes
  local label=$1 server=$2 t0 t1 rc=0
  t0=$(date +%s.%N)
  "$SMTP_SOURCE" -m "$N" -s 50 -l 1024 -M smtp-source.test -f load@smtp-source.test \
    -t sink@smtp-source.test "$server" >"$TMP/source.out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  python3 -c "import sys;n,t,rc=int(sys.argv[1]),float(sys.argv[2]),sys.argv[3];print(f'$label: {n} messages in {t:.2f} s, {n/t:.0f} msgs/s (smtp-source exit {rc})')" \
    "$N" "$(echo "$t1 - $t0" | bc)" "$rc"
  [ "$rc" = 0 ] || head -3 "$TMP/source.out"
}
source_run "(a) own sink     1 msg/conn    smtp-source" "$OWN"
source_run "(a) smtp-sink    1 msg/conn    smtp-source" "$PF"
