#!/usr/bin/env bash
# Starts a private Postfix instance on loopback for interop tests (never port 25).
#
#   LAB_DIR=/tmp/x scripts/postfix-lab.sh        # prints the state file path; exits 0 when ready
#   scripts/postfix-lab-stop.sh LAB_DIR           # stops it and removes LAB_DIR
#
# Environment:
#   LAB_DIR         directory for config, queue, logs and the state file (default: mktemp -d)
#   SMTPD_PORT      loopback port of the smtpd (default: a free port chosen here)
#   SMTPD_TLS       none | may | encrypt   smtpd_tls_security_level (none: STARTTLS not offered)
#   TLS_CERT        PEM chain (server certificate first) for the smtpd (needed unless SMTPD_TLS=none)
#   TLS_KEY         PEM private key for TLS_CERT
#   MODE            server (default): accept any mail and discard it;
#                   client: relay every message received on SMTPD_PORT to RELAY_HOST:RELAY_PORT
#                   with smtp_tls_security_level=CLIENT_TLS (use the smtpd as the submission point)
#   RELAY_HOST, RELAY_PORT   the next hop in client mode (loopback)
#   CLIENT_TLS      none | may | encrypt | verify | secure   (client mode; default encrypt)
#   CLIENT_CA       PEM CA file for verify/secure (client mode)
#   CLIENT_TLS_NAME the name to verify in verify/secure mode (default RELAY_HOST)
#
# The state file ($LAB_DIR/state) holds shell assignments: CONFIG_DIR, SMTPD_PORT, MASTER_PID,
# MAILLOG. Postfix prints start-up errors only to a terminal, so `postfix start` runs under
# `script -qec`; its output is in $LAB_DIR/start.log.
set -euo pipefail
LAB_DIR=${LAB_DIR:-$(mktemp -d /tmp/postfix-lab.XXXXXX)}
SMTPD_TLS=${SMTPD_TLS:-may}
MODE=${MODE:-server}
CLIENT_TLS=${CLIENT_TLS:-encrypt}
if [ -z "${SMTPD_PORT:-}" ]; then
  SMTPD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
[ "$SMTPD_PORT" != 25 ] || { echo "refusing port 25" >&2; exit 2; }

conf=$LAB_DIR/etc
mkdir -p "$conf" "$LAB_DIR/queue" "$LAB_DIR/data"
chown root:root "$LAB_DIR" "$conf" "$LAB_DIR/queue"
chown postfix "$LAB_DIR/data"

tls_lines=""
if [ "$SMTPD_TLS" != none ]; then
  : "${TLS_CERT:?TLS_CERT is required unless SMTPD_TLS=none}" "${TLS_KEY:?TLS_KEY is required}"
  cp "$TLS_CERT" "$conf/cert.pem"; cp "$TLS_KEY" "$conf/key.pem"; chmod 600 "$conf/key.pem"
  tls_lines="smtpd_tls_cert_file = $conf/cert.pem
smtpd_tls_key_file = $conf/key.pem"
fi

client_lines="default_transport = discard
local_transport = discard
relay_transport = discard"
if [ "$MODE" = client ]; then
  : "${RELAY_HOST:?RELAY_HOST is required in client mode}" "${RELAY_PORT:?RELAY_PORT is required}"
  [ "$RELAY_PORT" != 25 ] || { echo "refusing port 25" >&2; exit 2; }
  client_lines="default_transport = smtp
relay_transport = smtp
local_transport = smtp
relayhost = [$RELAY_HOST]:$RELAY_PORT
smtp_tls_security_level = $CLIENT_TLS
smtp_tls_loglevel = 1
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_verify_cert_match = ${CLIENT_TLS_NAME:-$RELAY_HOST}
smtp_tls_secure_cert_match = ${CLIENT_TLS_NAME:-$RELAY_HOST}"
  if [ -n "${CLIENT_CA:-}" ]; then
    cp "$CLIENT_CA" "$conf/ca.pem"
    client_lines="$client_lines
smtp_tls_CAfile = $conf/ca.pem"
  fi
fi

cat >"$conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $LAB_DIR/queue
data_directory = $LAB_DIR/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-lab.test
mydomain = postfix-lab.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_tls_security_level = $SMTPD_TLS
smtpd_tls_loglevel = 1
maillog_file_prefixes = $LAB_DIR
maillog_file = $LAB_DIR/maillog
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
message_size_limit = 1048576
$tls_lines
$client_lines
CF

cat >"$conf/master.cf" <<CF
127.0.0.1:$SMTPD_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF

script -qec "postfix -c $conf check" "$LAB_DIR/check.log" >/dev/null 2>&1 || true
if ! script -qec "postfix -c $conf start" "$LAB_DIR/start.log" >/dev/null 2>&1; then
  cat "$LAB_DIR/start.log" >&2; exit 1
fi
# Wait (bounded, 10 s) for the master PID file and a 220 banner from the smtpd.
banner() {
  (exec 3<>"/dev/tcp/127.0.0.1/$SMTPD_PORT" && read -r -t 2 line <&3 && printf 'QUIT\r\n' >&3 \
    && [[ $line == 220* ]]) 2>/dev/null
}
pid=""; ready=""
for _ in $(seq 1 50); do
  pid=$(tr -d ' ' <"$LAB_DIR/queue/pid/master.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && banner; then ready=1; break; fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "postfix did not come up" >&2; cat "$LAB_DIR/start.log" "$LAB_DIR/maillog" >&2 2>/dev/null || true; exit 1
fi
cat >"$LAB_DIR/state" <<ST
CONFIG_DIR=$conf
SMTPD_PORT=$SMTPD_PORT
MASTER_PID=$pid
MAILLOG=$LAB_DIR/maillog
MODE=$MODE
ST
echo "$LAB_DIR/state"
