#!/usr/bin/env bash
# The example relay against Postfix under the same load, in the same run (issue 7, "Load tool
# and benchmark"). Run by hand, not by CI (it builds release binaries and takes a few minutes).
#
#   scripts/relay-bench.sh [N_CONNECTIONS] [IDLE_CONNECTIONS]      (defaults 2000, 10000)
#
# Both MTAs: TLS required inbound (relay: HAT policy tls = "required"; Postfix:
# smtpd_tls_security_level = encrypt), the same ECDSA P-256 certificate from a test CA (names
# localhost and sink.test), TLS as negotiated by smtp-load's rustls client (TLS 1.3), a durable
# queue with fsync before 250 (relay: spool with group commit; Postfix: its queue, fsync by
# default, untouched), and the same next hop: every message is relayed over SMTP to a counting
# smtp-load sink (one sink per MTA, so each one's deliveries are counted separately). Same
# smtp-load parameters for both: C connections at a time, 4 KiB messages, STARTTLS verified
# against the test CA.
#
#   (a) 1 message per connection            N connections, concurrency C
#   (b) 100 messages per connection         N/50 connections, concurrency 20
#   (c) handshake only (EHLO, STARTTLS, handshake, EHLO-less QUIT)   N connections
#   (d) as (a), delivery to the sink over STARTTLS verified against the test CA
#       (relay: destination control required-verify; Postfix: smtp_tls_security_level = verify)
#   (m) memory per idle TLS connection: IDLE connections held after STARTTLS + EHLO (a python3
#       stdlib-ssl client), relay VmRSS before/after from /proc/PID/status
#   (e) as (c), full handshakes only: smtp-load --no-resumption (by default smtp-load resumes
#       TLS sessions from earlier connections of the run, as a sender with a session cache does;
#       "resumed" in the output counts them)
#   (p) plaintext, 1 message per connection, N connections, concurrency C: the relay's HAT
#       policy with tls = "no", Postfix with smtpd_tls_security_level = none
#
# Second clients, not written by this project, so the figures do not rest on smtp-load's
# behaviour alone (same N and C, reported beside smtp-load's in the second table):
#   (c) `openssl s_client -starttls smtp` (OpenSSL's client: full handshakes, no session cache,
#       no QUIT: close_notify and close), OSSL_N connections (default N/4: one process per
#       connection costs the client far more CPU than the server) at concurrency C
#   (p) Postfix's smtp-source (no TLS support, hence the plaintext phase; HELO, no pipelining)
# The key exchange group each client negotiated is printed: smtp-load (rustls) and OpenSSL
# from the client side, Postfix from its maillog; both MTAs offer X25519 first (the relay:
# rustls' aws-lc-rs defaults X25519, P-256, P-384, X25519MLKEM768), and a client offering the
# hybrid X25519MLKEM768 share first would negotiate it (it costs more than X25519).
#
# "accepted msgs/s" is smtp-load's figure (250 after DATA = on disk); "delivered msgs/s" is
# messages counted at the sink divided by the time from the start of the load to the last one
# counted (the queue drained), so a relay that accepts fast but delivers slowly cannot hide.
# Environment: C (concurrency, default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${1:-2000}
IDLE=${2:-10000}
C=${C:-50}
OSSL_N=${OSSL_N:-$((N / 4))}
SIZE=4096
# The relay and the idle client each hold IDLE descriptors.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((IDLE + 500)) ] || { echo "ulimit -n $(ulimit -n) too low for $IDLE idle connections" >&2; exit 2; }

cargo build --release -q -p relay -p smtp-tls-check --bins
BIN=$ROOT/target/release
TMP=$(mktemp -d /tmp/relay-bench.XXXXXX)
chmod 755 "$TMP" # Postfix daemons (user postfix) must reach the lab below it
PIDS=()
RELAY_PID=""
LAB=""
cleanup() {
  [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null
  for p in "${PIDS[@]}" $(cat "$TMP/sink.pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  [ -n "$LAB" ] && "$ROOT/scripts/postfix-lab-stop.sh" "$LAB" >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

echo "# relay-bench $(date -u +%FT%TZ) N=$N C=$C size=$SIZE idle=$IDLE; $(nproc) cores; loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# postfix $(postconf -dh mail_version), $(openssl version | cut -d' ' -f1-2); second clients: openssl s_client (OSSL_N=$OSSL_N), smtp-source ($(command -v smtp-source || echo /usr/sbin/smtp-source))"

# ---------------------------------------------------------------- PKI: one test CA, one cert
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=relay-bench test CA" -keyout "$TMP/ca.key" -out "$TMP/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$TMP/key.pem" -out "$TMP/req.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:sink.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$TMP/ext"
openssl x509 -req -in "$TMP/req.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 2 -extfile "$TMP/ext" -out "$TMP/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
banner() { # PORT: a 220 greeting within 2 s
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r -t 2 line <&3 && printf 'QUIT\r\n' >&3 \
    && [[ $line == 220* ]]) 2>/dev/null
}
wait_banner() { # PORT WHAT
  for _ in $(seq 100); do banner "$1" && return 0; sleep 0.1; done
  echo "$2 did not answer on port $1" >&2; return 1
}

# ---------------------------------------------------------------- sinks (one per MTA)
start_sink() { # NAME -> prints the port
  "$BIN/smtp-load" sink --listen 127.0.0.1:0 --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" \
    --count-file "$TMP/$1.count" >"$TMP/$1.out" 2>&1 &
  echo $! >>"$TMP/sink.pids" # called in $(...): a subshell, so PIDS+= would be lost
  for _ in $(seq 100); do grep -q listening "$TMP/$1.out" 2>/dev/null && break; sleep 0.05; done
  grep -o '127.0.0.1:[0-9]*' "$TMP/$1.out" | cut -d: -f2
}
: >"$TMP/relay-sink.count"
: >"$TMP/postfix-sink.count"
RELAY_SINK=$(start_sink relay-sink)
PF_SINK=$(start_sink postfix-sink)

# ---------------------------------------------------------------- the relay
CONF=$TMP/relay-conf
RUN=$TMP/relay-run
cp -r "$ROOT/examples/relay/config/bench" "$CONF"
sed -i "s/127.0.0.1:2626/127.0.0.1:$RELAY_SINK/" "$CONF/relay.toml"
mkdir -p "$RUN"
STORE=$RUN/relay-data/certs
"$BIN/smtp-tls-check" certs --store "$STORE" import --name bench --cert "$TMP/cert.pem" --key "$TMP/key.pem" >/dev/null
"$BIN/smtp-tls-check" certs --store "$STORE" ca import "$TMP/ca.pem" >/dev/null
"$BIN/smtp-tls-check" certs --store "$STORE" ca enable custom >/dev/null
"$BIN/smtp-tls-check" certs --store "$STORE" ca disable system >/dev/null
RELAY_PORT=$(free_port)
start_relay() {
  (cd "$RUN" && "$BIN/relay" --check-config "$CONF/relay.toml" >/dev/null)
  (cd "$RUN" && exec "$BIN/relay" --config "$CONF/relay.toml" --listen "127.0.0.1:$RELAY_PORT" \
    >>"$TMP/relay.log" 2>&1) &
  RELAY_PID=$!
  wait_banner "$RELAY_PORT" relay
}
stop_relay() {
  kill -TERM "$RELAY_PID"
  for _ in $(seq 300); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$RELAY_PID" 2>/dev/null; then echo "relay did not stop in 30 s" >&2; kill -9 "$RELAY_PID"; fi
  wait "$RELAY_PID" 2>/dev/null || echo "relay exit status $?" >>"$TMP/problems"
  RELAY_PID=""
}
start_relay

# ---------------------------------------------------------------- Postfix (client mode)
LAB=$TMP/postfix
mkdir -p "$LAB"
STATE=$(LAB_DIR=$LAB MODE=client SMTPD_TLS=encrypt TLS_CERT=$TMP/cert.pem TLS_KEY=$TMP/key.pem \
  RELAY_HOST=127.0.0.1 RELAY_PORT=$PF_SINK CLIENT_TLS=none CLIENT_CA=$TMP/ca.pem \
  CLIENT_TLS_NAME=sink.test "$ROOT/scripts/postfix-lab.sh")
# shellcheck disable=SC1090
. "$STATE"
PF_PORT=$SMTPD_PORT
PF_CONF=$CONFIG_DIR
pf_reload() {
  script -qec "postfix -c $PF_CONF reload" /dev/null >/dev/null 2>&1
  wait_banner "$PF_PORT" postfix
}

# ---------------------------------------------------------------- one measurement
RESULTS=$TMP/results.jsonl
: >"$RESULTS"
count() { wc -l <"$1"; }
# CPU time (clock ticks) used so far: the relay process (all threads); Postfix: the master, its
# live children (smtpd, cleanup, qmgr, smtp, ...) and the children it has already reaped.
cpu_ticks() { # MTA
  if [ "$1" = relay ]; then
    awk '{print $14 + $15}' "/proc/$RELAY_PID/stat"
  else
    { awk '{print $14 + $15 + $16 + $17}' "/proc/$MASTER_PID/stat"
      for c in $(ps --ppid "$MASTER_PID" -o pid=); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null; done
    } | awk '{s += $1} END {print s}'
  fi
}
measure() { # PHASE MTA PORT SINKCOUNT smtp-load args...
  local phase=$1 mta=$2 port=$3 sinkfile=$4; shift 4
  local before t0 t1 t2 c0 c1 out got want
  before=$(count "$sinkfile")
  c0=$(cpu_ticks "$mta")
  t0=$(date +%s.%N)
  out=$("$BIN/smtp-load" --server "127.0.0.1:$port" --json "${LOAD_TLS[@]}" \
    -s "$SIZE" --to bench@sink.test "$@" 2>"$TMP/load.err" || true)
  t1=$(date +%s.%N)
  [ -n "$out" ] || { echo "smtp-load failed: $(cat "$TMP/load.err")" >&2; out='{}'; }
  want=$((before + $(python3 -c 'import json,sys;print(json.loads(sys.argv[1]).get("accepted",0))' "$out")))
  # The queue drains: wait (bounded, 300 s) until the sink has counted every accepted message.
  got=$(count "$sinkfile")
  for _ in $(seq 6000); do
    got=$(count "$sinkfile"); [ "$got" -ge "$want" ] && break; sleep 0.05
  done
  t2=$(date +%s.%N)
  c1=$(cpu_ticks "$mta")
  python3 - "$phase" "$mta" "$out" "$t0" "$t1" "$t2" "$((got - before))" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) ))" >>"$RESULTS" <<'PY'
import json, sys
phase, mta, out, t0, t1, t2, delivered, load, cpu_ms = sys.argv[1:]
d = json.loads(out)
t0, t1, t2, delivered = float(t0), float(t1), float(t2), int(delivered)
acc = d.get("accepted", 0)
print(json.dumps({
    "phase": phase, "mta": mta, "accepted": acc, "rejected": d.get("rejected"),
    "failed_connections": d.get("failed_connections"), "errors": d.get("first_errors", [])[:3],
    "msgs_per_sec": d.get("msgs_per_sec", 0.0), "handshakes_per_sec": d.get("handshakes_per_sec", 0.0),
    "p50_ms": d.get("latency_ms", {}).get("p50"), "p99_ms": d.get("latency_ms", {}).get("p99"),
    "delivered": delivered,
    "delivered_per_sec": delivered / (t2 - t0) if delivered and acc else 0.0,
    "drain_secs": t2 - t1, "loadavg": load, "cpu_ms": int(cpu_ms),
    # CPU of the MTA (not of smtp-load or the sink) per message, or per handshake in (c)
    "cpu_ms_per_unit": int(cpu_ms) / (acc or d.get("handshakes", 0) or 1),
    "client": "smtp-load", "resumed": d.get("resumed_handshakes"), "kx_groups": d.get("kx_groups", {}),
}))
PY
}
LOAD_TLS=(--tls starttls --ca-file "$TMP/ca.pem" --server-name localhost)

# One `openssl s_client -starttls smtp` connection: "ok PROTOCOL GROUP" or "fail DETAIL".
ossl_one() { # PORT CAFILE
  local out
  if out=$(timeout 60 openssl s_client -brief -starttls smtp -connect "127.0.0.1:$1" -CAfile "$2" \
      -verify_return_error -verify_hostname localhost -servername localhost </dev/null 2>&1) \
      && [[ $out == *"Verification: OK"* ]]; then
    local proto group
    proto=$(sed -n 's/^Protocol version: //p' <<<"$out")
    # OpenSSL 3.0: "Server Temp Key: X25519, 253 bits"; 3.2+: "Negotiated TLS1.3 group: ..."
    group=$(sed -nE 's/^(Server Temp Key|Negotiated TLS1.3 group): ([^,]*).*/\2/p' <<<"$out" | head -1)
    echo "ok ${proto:-?} ${group:-?}"
  else
    echo "fail $(tail -1 <<<"$out" | tr -s ' ' | cut -c1-120)"
  fi
}
export -f ossl_one
# OSSL_N handshakes at concurrency C with openssl s_client; one row like measure's.
measure_ossl() { # PHASE MTA PORT
  local phase=$1 mta=$2 port=$3 t0 t1 c0 c1
  c0=$(cpu_ticks "$mta")
  t0=$(date +%s.%N)
  seq "$OSSL_N" | xargs -P "$C" -n 1 bash -c 'ossl_one "$0" "$1"' "$port" "$TMP/ca.pem" >"$TMP/ossl.out" 2>&1 || true
  t1=$(date +%s.%N)
  c1=$(cpu_ticks "$mta")
  python3 - "$phase" "$mta" "$TMP/ossl.out" "$t0" "$t1" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) ))" >>"$RESULTS" <<'PY'
import collections, json, sys
phase, mta, path, t0, t1, load, cpu_ms = sys.argv[1:]
lines = [l.split(" ", 2) for l in open(path).read().splitlines() if l]
ok = [l for l in lines if l[0] == "ok"]
groups = collections.Counter(f"{l[1]} {l[2]}" for l in ok if len(l) == 3)
secs = float(t1) - float(t0)
print(json.dumps({
    "phase": phase, "mta": mta, "client": "openssl", "handshakes": len(ok),
    "failed_connections": len(lines) - len(ok), "errors": [" ".join(l[1:]) for l in lines if l[0] != "ok"][:3],
    "handshakes_per_sec": len(ok) / secs, "msgs_per_sec": 0.0, "secs": secs, "loadavg": load,
    "cpu_ms": int(cpu_ms), "cpu_ms_per_unit": int(cpu_ms) / (len(ok) or 1), "kx_groups": dict(groups),
}))
PY
}
# N messages, one per connection, concurrency C, with Postfix's smtp-source (plaintext, HELO);
# counted as accepted when the sink has them (the MTA's queue drained).
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
measure_source() { # PHASE MTA PORT SINKCOUNT
  local phase=$1 mta=$2 port=$3 sinkfile=$4 before t0 t1 t2 c0 c1 got rc=0
  before=$(count "$sinkfile")
  c0=$(cpu_ticks "$mta")
  t0=$(date +%s.%N)
  "$SMTP_SOURCE" -m "$N" -s "$C" -l "$SIZE" -M smtp-source.test -f load@smtp-source.test \
    -t bench@sink.test "127.0.0.1:$port" >"$TMP/source.out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  got=$(count "$sinkfile")
  for _ in $(seq 6000); do
    got=$(count "$sinkfile"); [ "$got" -ge $((before + N)) ] && break; sleep 0.05
  done
  t2=$(date +%s.%N)
  c1=$(cpu_ticks "$mta")
  python3 - "$phase" "$mta" "$rc" "$TMP/source.out" "$t0" "$t1" "$t2" "$((got - before))" \
    "$(cut -d' ' -f1 /proc/loadavg)" "$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) ))" "$N" >>"$RESULTS" <<'PY'
import json, sys
phase, mta, rc, path, t0, t1, t2, delivered, load, cpu_ms, n = sys.argv[1:]
t0, t1, t2, delivered, n = float(t0), float(t1), float(t2), int(delivered), int(n)
errors = [l.strip() for l in open(path).read().splitlines() if l.strip()][:3]
acc = n if rc == "0" else delivered
print(json.dumps({
    "phase": phase, "mta": mta, "client": "smtp-source", "accepted": acc, "exit": int(rc),
    "errors": errors, "msgs_per_sec": acc / (t1 - t0), "delivered": delivered,
    "delivered_per_sec": delivered / (t2 - t0) if delivered else 0.0, "drain_secs": t2 - t1,
    "loadavg": load, "cpu_ms": int(cpu_ms), "cpu_ms_per_unit": int(cpu_ms) / (acc or 1),
    "handshakes_per_sec": 0.0,
}))
PY
}

# Same load for both, relay first then Postfix, in each phase.
A=(-n "$N" -m 1 -c "$C")
B=(-n $((N / 50)) -m 100 -c 20)
HS=(-n "$N" -c "$C" --handshake-only)
for mta in relay postfix; do
  if [ $mta = relay ]; then p=$RELAY_PORT; s=$TMP/relay-sink.count; else p=$PF_PORT; s=$TMP/postfix-sink.count; fi
  measure warmup "$mta" "$p" "$s" -n 100 -m 1 -c 10
done
for phase in a b c e; do
  case $phase in a) args=("${A[@]}") ;; b) args=("${B[@]}") ;; c) args=("${HS[@]}") ;; e) args=("${HS[@]}" --no-resumption) ;; esac
  measure "$phase" relay "$RELAY_PORT" "$TMP/relay-sink.count" "${args[@]}"
  measure "$phase" postfix "$PF_PORT" "$TMP/postfix-sink.count" "${args[@]}"
done
# (c) with the second client: openssl s_client handshakes.
measure_ossl c relay "$RELAY_PORT"
measure_ossl c postfix "$PF_PORT"

# (d) outbound STARTTLS to the sink, verified against the test CA, for both.
stop_relay
cp "$CONF/destinations-tls.toml" "$CONF/destinations-plain.toml"
start_relay
postconf -c "$PF_CONF" -e "smtp_tls_security_level = verify"
pf_reload
measure d relay "$RELAY_PORT" "$TMP/relay-sink.count" "${A[@]}"
measure d postfix "$PF_PORT" "$TMP/postfix-sink.count" "${A[@]}"

# ---------------------------------------------------------------- (m) idle TLS connections
stop_relay
start_relay
cat >"$TMP/idle.py" <<'PY'
# Opens N connections: 220, EHLO, STARTTLS, TLS (verified against the CA), EHLO; holds them
# until stdin closes. Prints {"held": .., "failed": .., "errors": [..]} once all are open.
import json, socket, ssl, sys
from concurrent.futures import ThreadPoolExecutor
port, n, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def reply(s):
    buf = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed; got %r" % buf[-80:])
        buf += chunk
        last = buf.split(b"\r\n")[-2] if buf.endswith(b"\r\n") else b""
        if len(last) >= 4 and last[3:4] == b" ":
            return buf
def expect(s, code):
    r = reply(s)
    if not r.startswith(code):
        raise ConnectionError("expected %s, got %r" % (code.decode(), r[:80]))
def one(_):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        expect(s, b"220"); s.sendall(b"EHLO idle.test\r\n"); expect(s, b"250")
        s.sendall(b"STARTTLS\r\n"); expect(s, b"220")
        t = ctx.wrap_socket(s, server_hostname="localhost")
        t.sendall(b"EHLO idle.test\r\n"); expect(t, b"250")
        return t
    except Exception:
        s.close(); raise
held, errors = [], []
with ThreadPoolExecutor(8) as pool:
    for f in [pool.submit(one, i) for i in range(n)]:
        try: held.append(f.result())
        except Exception as e: errors.append(repr(e))
print(json.dumps({"held": len(held), "failed": len(errors), "errors": errors[:3]}), flush=True)
sys.stdin.read()
PY
rss() { awk '/^VmRSS/ {print $2}' "/proc/$RELAY_PID/status"; }
# Warm up (first TLS connection, allocator arenas), then the baseline.
measure warmup relay "$RELAY_PORT" "$TMP/relay-sink.count" -n 20 -m 1 -c 2
RSS0=$(rss)
mkfifo "$TMP/idle.in"
python3 "$TMP/idle.py" "$RELAY_PORT" "$IDLE" "$TMP/ca.pem" <"$TMP/idle.in" >"$TMP/idle.out" 2>&1 &
IDLE_PID=$!
PIDS+=("$IDLE_PID")
exec 7>"$TMP/idle.in"
for _ in $(seq 3000); do grep -q held "$TMP/idle.out" 2>/dev/null && break; kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.1; done
RSS1=$(rss)
HWM=$(awk '/^VmHWM/ {print $2}' "/proc/$RELAY_PID/status")
FDS=$(ls "/proc/$RELAY_PID/fd" | wc -l)
exec 7>&-
wait "$IDLE_PID" 2>/dev/null || true
python3 - "$(cat "$TMP/idle.out")" "$RSS0" "$RSS1" "$HWM" "$FDS" >>"$RESULTS" <<'PY'
import json, sys
out, r0, r1, hwm, fds = sys.argv[1], *map(int, sys.argv[2:])
try: d = json.loads(out.strip().splitlines()[-1])
except Exception: d = {"held": 0, "failed": -1, "errors": [out[-300:]]}
print(json.dumps({"phase": "m", "mta": "relay", **d, "rss_before_kib": r0, "rss_after_kib": r1,
                  "hwm_kib": hwm, "relay_fds": fds,
                  "kib_per_conn": (r1 - r0) / d["held"] if d["held"] else None}))
PY
stop_relay

# ---------------------------------------------------------------- (p) plaintext, two clients
# The relay's HAT policy and Postfix's smtpd without TLS (smtp-source cannot do STARTTLS);
# delivery to the sink in plaintext again, as in (a)-(c).
sed -i 's/^tls = "required"/tls = "no"/' "$CONF/hat.toml"
cp "$ROOT/examples/relay/config/bench/destinations-plain.toml" "$CONF/destinations-plain.toml"
postconf -c "$PF_CONF" -e "smtp_tls_security_level = none"
grep -q '^tls = "no"' "$CONF/hat.toml" || echo "(p): could not switch the relay's HAT to tls = no" >>"$TMP/problems"
start_relay
postconf -c "$PF_CONF" -e "smtpd_tls_security_level = none"
pf_reload
LOAD_TLS=(--tls none)
measure p relay "$RELAY_PORT" "$TMP/relay-sink.count" "${A[@]}"
measure p postfix "$PF_PORT" "$TMP/postfix-sink.count" "${A[@]}"
measure_source p relay "$RELAY_PORT" "$TMP/relay-sink.count"
measure_source p postfix "$PF_PORT" "$TMP/postfix-sink.count"
stop_relay

# ---------------------------------------------------------------- problems and the table
{
  # (one line per connection, "disconnect", at INFO; WARN when TLS was required and never
  # established, e.g. a client that closed before STARTTLS)
  grep -E ' (WARN|ERROR) ' "$TMP/relay.log" | sed -E 's/^[^ ]+ +//; s/peer=[0-9.:]+//' | sort | uniq -c | sort -rn | head -10 | sed 's/^/relay log: /'
  grep -Ec 'status=(deferred|bounced)' "$LAB/maillog" | sed 's/^/postfix deferred+bounced: /'
  grep -E 'warning|fatal|panic' "$LAB/maillog" | sed -E 's/^.*(warning|fatal|panic)/\1/' | sort | uniq -c | sort -rn | head -5 | sed 's/^/postfix log: /'
  printf 'sink counts: relay %s lines (%s unique), postfix %s lines (%s unique)\n' \
    "$(count "$TMP/relay-sink.count")" "$(sort -u "$TMP/relay-sink.count" | wc -l)" \
    "$(count "$TMP/postfix-sink.count")" "$(sort -u "$TMP/postfix-sink.count" | wc -l)"
  grep -h 'TLS connection established' "$LAB/maillog" | sed -E 's/^.*TLS connection established (from|to) [^ ]+ /\1: /; s/ \([0-9/]+ bits\)//' | sort | uniq -c | sed 's/^/postfix TLS: /'
  grep -o 'tls_protocol=[^ ]* tls_cipher=[^ ]*' "$TMP/relay.log" | sort | uniq -c | sed 's/^/relay TLS: /'
  cat "$TMP/problems" 2>/dev/null
} >"$TMP/notes" || true
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["phase"], r["mta"]): r for r in rows if r["phase"] != "warmup" and r.get("client", "smtp-load") == "smtp-load"}
names = {"a": "(a) 1 msg/conn, TLS in", "b": "(b) 100 msgs/conn, TLS in", "c": "(c) handshake only",
         "d": "(d) as (a), TLS out verified", "e": "(e) as (c), full handshakes",
         "p": "(p) 1 msg/conn, plaintext"}
print(f"{'phase':30} {'relay acc/s':>11} {'pf acc/s':>9} {'ratio':>6} | {'relay dlv/s':>11} {'pf dlv/s':>9} {'ratio':>6} | {'relay hs/s':>10} {'pf hs/s':>8} {'ratio':>6} | {'CPU ms/unit relay':>17} {'pf':>5} {'ratio':>6}")
def ratio(a, b): return f"{a / b:6.2f}" if b else "     -"
for p in "abcdep":
    r, f = by.get((p, "relay")), by.get((p, "postfix"))
    if not r or not f: continue
    print(f"{names[p]:30} {r['msgs_per_sec']:11.0f} {f['msgs_per_sec']:9.0f} {ratio(r['msgs_per_sec'], f['msgs_per_sec'])} | "
          f"{r['delivered_per_sec']:11.0f} {f['delivered_per_sec']:9.0f} {ratio(r['delivered_per_sec'], f['delivered_per_sec'])} | "
          f"{r['handshakes_per_sec']:10.0f} {f['handshakes_per_sec']:8.0f} {ratio(r['handshakes_per_sec'], f['handshakes_per_sec'])} | "
          f"{r['cpu_ms_per_unit']:17.2f} {f['cpu_ms_per_unit']:5.2f} {ratio(f['cpu_ms_per_unit'], r['cpu_ms_per_unit'])}")
for p in "abcdep":
    for m in ("relay", "postfix"):
        r = by.get((p, m))
        if r: print(f"  {p} {m:7}: accepted {r['accepted']} rejected {r['rejected']} failed_conn {r['failed_connections']} "
                    f"delivered {r['delivered']} drain {r['drain_secs']:.1f}s p50 {r['p50_ms']:.1f}ms p99 {r['p99_ms']:.1f}ms "
                    f"cpu {r['cpu_ms']} ms load {r['loadavg']}"
                    + (f" resumed {r['resumed']} kx {r['kx_groups']}" if r.get("kx_groups") else "")
                    + (f" errors {r['errors']}" if r['errors'] else ""))
# Both clients side by side: smtp-load and the second client (openssl s_client in (c),
# smtp-source in (p)), per MTA: rate and the MTA's CPU per unit (handshake or message).
second = {(r["phase"], r["mta"], r["client"]): r for r in rows if r.get("client") in ("openssl", "smtp-source")}
if second:
    print(f"{'phase / client':38} {'relay /s':>9} {'pf /s':>7} {'ratio':>6} | {'CPU ms/unit relay':>17} {'pf':>5} {'ratio':>6} | groups (client side)")
for p, client, unit in (("c", "smtp-load", "handshakes_per_sec"), ("c", "openssl", "handshakes_per_sec"),
                        ("e", "smtp-load", "handshakes_per_sec"),
                        ("p", "smtp-load", "msgs_per_sec"), ("p", "smtp-source", "msgs_per_sec")):
    get = (lambda m: by.get((p, m))) if client == "smtp-load" else (lambda m: second.get((p, m, client)))
    r, f = get("relay"), get("postfix")
    if not r or not f or not second: continue
    label = f"{names[p][:26]} {client}"
    groups = "; ".join(f"{m}: {g}" for m, g in (("relay", r.get("kx_groups")), ("pf", f.get("kx_groups"))) if g)
    print(f"{label:38} {r[unit]:9.0f} {f[unit]:7.0f} {ratio(r[unit], f[unit])} | "
          f"{r['cpu_ms_per_unit']:17.3f} {f['cpu_ms_per_unit']:5.3f} {ratio(f['cpu_ms_per_unit'], r['cpu_ms_per_unit'])} | {groups}")
for k, r in sorted(second.items()):
    print(f"  {k[0]} {k[1]:7} {k[2]:11}: " + " ".join(f"{x} {r[x]}" for x in ("handshakes", "accepted", "delivered", "failed_connections", "exit", "cpu_ms", "loadavg") if x in r)
          + (f" errors {r['errors']}" if r.get("errors") else ""))
m = by.get(("m", "relay"))
if m:
    per = f"{m['kib_per_conn']:.1f} KiB" if m["kib_per_conn"] is not None else "-"
    print(f"(m) idle TLS connections held: {m['held']} (failed {m['failed']}) relay VmRSS {m['rss_before_kib']} -> "
          f"{m['rss_after_kib']} KiB (HWM {m['hwm_kib']}, fds {m['relay_fds']}): {per} per connection"
          + (f" errors {m['errors']}" if m.get("errors") else ""))
PY
cat "$TMP/notes"
echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
