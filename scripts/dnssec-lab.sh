#!/usr/bin/env bash
# DNSSEC lab for the dane-verify tests, on loopback only (adapted from the project's lab recipe).
#   knotd #1 parent "test." (signed)                          127.0.0.1:$PARENT_PORT
#   knotd #2 children: dane.test (signed), broken.test         127.0.0.1:$CHILD_PORT
#            (signed, then MX/TLSA/TXT tampered -> bogus), unsigned.test (insecure delegation)
#   unbound validating, trust anchor = DS of "test."           127.0.0.1:$UNBOUND_PORT
#   unbound iterator only (for clients that validate themselves) 127.0.0.1:$NOVAL_PORT
# Environment (all optional): PARENT_PORT CHILD_PORT UNBOUND_PORT NOVAL_PORT, STATE (env file
# written for the tests and dnssec-lab-stop.sh), LAB_TIMEOUT (seconds to wait for readiness),
# SMTP_PORT (unset by default; see below).
# Needs: knot unbound ldnsutils openssl bind9-dnsutils (scripts/install-deps.sh installs them).
#
# Destinations (next-hop domains) for the RFC 7672 matrix; every MX host has A 127.0.0.1 (but
# the IPv6-only target of cname6.dane.test):
#   {present,unusable,absent,bogus,servfail}.{dane,unsigned,broken}.test
#     MX secure (dane.test) / insecure (unsigned.test) / bogus (broken.test, tampered MX)
#     -> mx.dane.test           TLSA 3 1 1 leaf-SPKI + 2 1 1 CA-SPKI   (present)
#     -> mx-unusable.dane.test  TLSA 0 1 1 + 1 1 1 only               (unusable)
#     -> mx-absent.dane.test    no TLSA, secure NXDOMAIN               (absent)
#     -> mx.broken.test         TLSA tampered after signing            (bogus)
#     -> mx-sf.dane.test        TLSA name delegated to a lame server   (SERVFAIL)
#   ta.dane.test      -> mx-ta.dane.test  TLSA 2 1 1 only (DANE-TA, private CA)
#   cname.dane.test   -> alias.dane.test CNAME mx-target.dane.test; TLSA only at the alias
#   cname6.dane.test  -> alias6.dane.test CNAME mx6-target.dane.test: AAAA ::1 only (no A),
#                        TLSA 3 1 1 only at the target (RFC 7672 §2.2.2: the expanded name)
#   two.dane.test     -> MX 10 mx.dane.test, MX 20 mx-ta.dane.test
#   outlook.dane.test -> mx-sf.unsigned.test (insecure host whose TLSA name SERVFAILs)
#   nxdomain.dane.test does not exist (secure NXDOMAIN)
# MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) domains: `_mta-sts.D` TXT, `mta-sts.D` A 127.0.0.1
# (the tests' HTTPS policy server tells the domains apart by Host/SNI), MX as shown:
#   sts.unsigned.test           -> mx.unsigned.test  TXT "v=STSv1; id=20261204T1",
#                                  _smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sts.unsigned.test"
#   sts-testing.unsigned.test   -> mx.unsigned.test  TXT "v=STSv1; id=20261204T2"
#   sts-nomatch.unsigned.test   -> mx.unsigned.test  TXT "v=STSv1; id=20261204T3"
#   sts-fetchfail.unsigned.test -> mx.unsigned.test  TXT "v=STSv1; id=20261204T4"
#   sts-multi.unsigned.test     -> mx.unsigned.test  two TXT "v=STSv1; id=multi1" / "...multi2"
#   sts-split.unsigned.test     -> mx.unsigned.test  one TXT of two strings "v=STSv1; " "id=split1"
#   sts.dane.test (secure)      -> mx.dane.test (DANE) TXT "v=STSv1; id=20261204D1",
#                                  _smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sts.dane.test"
#   sts.broken.test (no MX)     _mta-sts TXT tampered after signing (bogus); mta-sts A secure
# TLS-RPT `rua` lists (RFC 8460 §3), each domain -> mx.unsigned.test, `_smtp._tls` TXT:
#   rpt-badrua.unsigned.test    "v=TLSRPTv1; rua=postmaster@rpt-badrua.unsigned.test,
#                                mailto:tlsrpt@rpt-badrua.unsigned.test" (first URI lacks mailto:)
#   rpt-allbad.unsigned.test    "v=TLSRPTv1; rua=postmaster@rpt-allbad.unsigned.test,
#                                http://tlsrpt.unsigned.test/tlsrpt" (no usable URI)
#   tlsrpt.unsigned.test        A 127.0.0.1 (the tests' HTTPS report collector)
# With TLSRPT_HTTPS_PORT set (the collector listening on 127.0.0.1:$TLSRPT_HTTPS_PORT; unset by
# default: these records are then absent), C = https://tlsrpt.unsigned.test:$TLSRPT_HTTPS_PORT:
#   rpt-https.unsigned.test     "v=TLSRPTv1; rua=C/tlsrpt/https"
#   rpt-both.unsigned.test      "v=TLSRPTv1; rua=mailto:tlsrpt@rpt-both.unsigned.test,C/tlsrpt/both"
#   rpt-500.unsigned.test       "v=TLSRPTv1; rua=C/tlsrpt/500,mailto:tlsrpt@rpt-500.unsigned.test"
#   rpt-hang.unsigned.test      "v=TLSRPTv1; rua=C/tlsrpt/hang,mailto:tlsrpt@rpt-hang.unsigned.test"
#   (the collector tells them apart by path) and the state file records TLSRPT_HTTPS_PORT.
# With SMTP_PORT set (a test MX listening on 127.0.0.1:$SMTP_PORT instead of 25; RFC 7672 §3:
# the TLSA base name follows the port connected to), dane.test also gets:
#   _$SMTP_PORT._tcp.mx.dane.test  TLSA 3 1 1 leaf-SPKI        (present.dane.test verifies)
#   wrongkey.dane.test -> mx-wrongkey.dane.test  TLSA 3 1 1 of another key at that port
#     (mismatch: the lab MX certificate served there does not match)
# and the state file records SMTP_PORT. Unset, the zones are exactly as listed above.
set -euo pipefail
if [ -n "${TLSRPT_HTTPS_PORT:-}" ]; then
  [[ $TLSRPT_HTTPS_PORT =~ ^[1-9][0-9]{0,4}$ ]] && [ "$TLSRPT_HTTPS_PORT" -le 65535 ] || {
    echo "dnssec-lab: TLSRPT_HTTPS_PORT must be a TCP port, not '$TLSRPT_HTTPS_PORT'" >&2; exit 2; }
fi
if [ -n "${SMTP_PORT:-}" ]; then
  [[ $SMTP_PORT =~ ^[1-9][0-9]{0,4}$ ]] && [ "$SMTP_PORT" -le 65535 ] && [ "$SMTP_PORT" != 25 ] || {
    echo "dnssec-lab: SMTP_PORT must be a TCP port other than 25, not '$SMTP_PORT'" >&2; exit 2; }
fi
PARENT_PORT=${PARENT_PORT:-5301}
CHILD_PORT=${CHILD_PORT:-5302}
UNBOUND_PORT=${UNBOUND_PORT:-5353}
NOVAL_PORT=${NOVAL_PORT:-5354}
STATE=${STATE:-${TMPDIR:-/tmp}/dnssec-lab.env}
LAB_TIMEOUT=${LAB_TIMEOUT:-10}
export PATH="$PATH:/usr/sbin:/sbin"
for tool in knotd unbound unbound-checkconf ldns-keygen ldns-signzone ldns-key2ds openssl dig; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "dnssec-lab: '$tool' not found; run scripts/install-deps.sh" >&2; exit 3; }
done
LAB_DIR=$(mktemp -d /tmp/dnssec-lab.XXXXXX)
cd "$LAB_DIR"
mkdir -p keys zones/parent zones/child run/parent run/child db/parent db/child
PIDS=()
cleanup_on_error() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'cleanup_on_error' ERR

# --- private CA and MX certificate (DANE-EE 3 1 1 and DANE-TA 2 1 1) ------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
  -days 30 -subj "/CN=DANE Lab CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout mx.key -out mx.csr \
  -subj "/CN=mx.dane.test" 2>/dev/null
cat > mx.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:mx.dane.test,DNS:mx-ta.dane.test,DNS:mx-target.dane.test,DNS:alias.dane.test,DNS:mx6-target.dane.test,DNS:mx.broken.test,DNS:mx.unsigned.test
EOF
openssl x509 -req -in mx.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile mx.ext \
  -out mx.crt 2>/dev/null
cat mx.crt ca.crt > mx-chain.pem
spki256() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
SPKI_SHA256=$(spki256 mx.crt)
CA_SPKI_SHA256=$(spki256 ca.crt)
WRONG_SHA256=$(printf 'not-the-key' | sha256sum | cut -d' ' -f1)

soa() { echo "\$ORIGIN $1.
\$TTL 300
@ IN SOA ns.$1. hostmaster.$1. 1 3600 600 86400 300
@ IN NS ns.$1.
ns IN A 127.0.0.1"; }
# MX destinations for one matrix row: $1 = MX RRset zone (names relative to it)
matrix_mx() { cat <<EOF
present IN MX 10 mx.dane.test.
unusable IN MX 10 mx-unusable.dane.test.
absent IN MX 10 mx-absent.dane.test.
bogus IN MX 10 mx.broken.test.
servfail IN MX 10 mx-sf.dane.test.
EOF
}
{ soa dane.test; matrix_mx; cat <<EOF
@ IN MX 10 mx.dane.test.
mx IN A 127.0.0.1
_25._tcp.mx IN TLSA 3 1 1 $SPKI_SHA256
_25._tcp.mx IN TLSA 2 1 1 $CA_SPKI_SHA256
mx-unusable IN A 127.0.0.1
_25._tcp.mx-unusable IN TLSA 0 1 1 $CA_SPKI_SHA256
_25._tcp.mx-unusable IN TLSA 1 1 1 $SPKI_SHA256
mx-absent IN A 127.0.0.1
mx-sf IN A 127.0.0.1
_tcp.mx-sf IN NS ns.dane.test.
mx-ta IN A 127.0.0.1
_25._tcp.mx-ta IN TLSA 2 1 1 $CA_SPKI_SHA256
mx-target IN A 127.0.0.1
alias IN CNAME mx-target.dane.test.
_25._tcp.alias IN TLSA 3 1 1 $SPKI_SHA256
alias6 IN CNAME mx6-target.dane.test.
mx6-target IN AAAA ::1
_25._tcp.mx6-target IN TLSA 3 1 1 $SPKI_SHA256
cname6 IN MX 10 alias6.dane.test.
ta IN MX 10 mx-ta.dane.test.
cname IN MX 10 alias.dane.test.
two IN MX 10 mx.dane.test.
two IN MX 20 mx-ta.dane.test.
outlook IN MX 10 mx-sf.unsigned.test.
sts IN MX 10 mx.dane.test.
_mta-sts.sts IN TXT "v=STSv1; id=20261204D1"
mta-sts.sts IN A 127.0.0.1
_smtp._tls.sts IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sts.dane.test"
EOF
  if [ -n "${SMTP_PORT:-}" ]; then cat <<EOF
_$SMTP_PORT._tcp.mx IN TLSA 3 1 1 $SPKI_SHA256
wrongkey IN MX 10 mx-wrongkey.dane.test.
mx-wrongkey IN A 127.0.0.1
_$SMTP_PORT._tcp.mx-wrongkey IN TLSA 3 1 1 $WRONG_SHA256
EOF
  fi
} > zones/child/dane.test.zone
{ soa broken.test; matrix_mx; cat <<EOF
mx IN A 127.0.0.1
_25._tcp.mx IN TLSA 3 1 1 $SPKI_SHA256
_mta-sts.sts IN TXT "v=STSv1; id=20261204B1"
mta-sts.sts IN A 127.0.0.1
EOF
} > zones/child/broken.test.zone
{ soa unsigned.test; matrix_mx; cat <<EOF
mx IN A 127.0.0.1
_25._tcp.mx IN TLSA 3 1 1 $SPKI_SHA256
mx-sf IN A 127.0.0.1
_tcp.mx-sf IN NS ns.unsigned.test.
_smtp._tls.sts IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sts.unsigned.test"
_mta-sts.sts-multi IN TXT "v=STSv1; id=multi1"
_mta-sts.sts-multi IN TXT "v=STSv1; id=multi2"
_mta-sts.sts-split IN TXT "v=STSv1; " "id=split1"
EOF
  # one MX, `_mta-sts` TXT (the id, when given) and `mta-sts` A per MTA-STS domain
  for d in sts:20261204T1 sts-testing:20261204T2 sts-nomatch:20261204T3 \
           sts-fetchfail:20261204T4 sts-multi: sts-split:; do
    echo "${d%%:*} IN MX 10 mx.unsigned.test."
    echo "mta-sts.${d%%:*} IN A 127.0.0.1"
    [ -z "${d#*:}" ] || echo "_mta-sts.${d%%:*} IN TXT \"v=STSv1; id=${d#*:}\""
  done
  # TLS-RPT rua lists (header): one MX each, the collector's host
  for d in rpt-badrua rpt-allbad; do echo "$d IN MX 10 mx.unsigned.test."; done
  cat <<EOF
tlsrpt IN A 127.0.0.1
_smtp._tls.rpt-badrua IN TXT "v=TLSRPTv1; rua=postmaster@rpt-badrua.unsigned.test,mailto:tlsrpt@rpt-badrua.unsigned.test"
_smtp._tls.rpt-allbad IN TXT "v=TLSRPTv1; rua=postmaster@rpt-allbad.unsigned.test,http://tlsrpt.unsigned.test/tlsrpt"
EOF
  if [ -n "${TLSRPT_HTTPS_PORT:-}" ]; then
    C="https://tlsrpt.unsigned.test:$TLSRPT_HTTPS_PORT/tlsrpt"
    for d in rpt-https rpt-both rpt-500 rpt-hang; do echo "$d IN MX 10 mx.unsigned.test."; done
    cat <<EOF
_smtp._tls.rpt-https IN TXT "v=TLSRPTv1; rua=$C/https"
_smtp._tls.rpt-both IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@rpt-both.unsigned.test,$C/both"
_smtp._tls.rpt-500 IN TXT "v=TLSRPTv1; rua=$C/500,mailto:tlsrpt@rpt-500.unsigned.test"
_smtp._tls.rpt-hang IN TXT "v=TLSRPTv1; rua=$C/hang,mailto:tlsrpt@rpt-hang.unsigned.test"
EOF
  fi
} > zones/child/unsigned.test.zone

keygen() { # $1 zone -> sets KSK ZSK (paths without extension)
  ( cd keys
    ldns-keygen -a ECDSAP256SHA256 -k "$1" >"$1.ksk"
    ldns-keygen -a ECDSAP256SHA256 "$1" >"$1.zsk" )
  KSK=keys/$(cat "keys/$1.ksk"); ZSK=keys/$(cat "keys/$1.zsk")
}
EXP=$(date -u -d '+30 days' +%Y%m%d%H%M%S); INC=$(date -u -d '-1 hour' +%Y%m%d%H%M%S)
sign() { ldns-signzone -i "$INC" -e "$EXP" -o "$2" -f "$3" "$1" "$ZSK" "$KSK"; }

keygen dane.test;   sign zones/child/dane.test.zone dane.test zones/child/dane.test.signed
DANE_DS=$(ldns-key2ds -n -2 "$KSK.key")
keygen broken.test; sign zones/child/broken.test.zone broken.test zones/child/broken.test.signed
BROKEN_DS=$(ldns-key2ds -n -2 "$KSK.key")
# tamper after signing -> RRSIGs no longer match (bogus): the TLSA data and every MX RRset
sed -i "/^_25\._tcp\.mx\.broken\.test\..*TLSA/ s/$SPKI_SHA256/$WRONG_SHA256/I" zones/child/broken.test.signed
sed -i -E '/^[a-z-]+\.broken\.test\.[[:space:]].*[[:space:]]MX[[:space:]]+10 / s/([[:space:]]MX[[:space:]]+)10 /\111 /' \
  zones/child/broken.test.signed
grep -qi "$WRONG_SHA256" zones/child/broken.test.signed
# ... and the MTA-STS TXT record of sts.broken.test (its id changed under the RRSIG)
sed -i -E '/^_mta-sts\.sts\.broken\.test\.[[:space:]].*TXT/ s/id=20261204B1/id=20261204B9/' \
  zones/child/broken.test.signed
[ "$(grep -c 'id=20261204B9' zones/child/broken.test.signed)" -eq 1 ]
[ "$(grep -cE '[[:space:]]MX[[:space:]]+11 ' zones/child/broken.test.signed)" -eq 5 ]

{ soa test
  for c in dane broken unsigned; do echo "$c IN NS ns.$c.test."; echo "ns.$c IN A 127.0.0.1"; done
  echo "$DANE_DS"; echo "$BROKEN_DS"; } > zones/parent/test.zone
keygen test; sign zones/parent/test.zone test zones/parent/test.signed
TEST_DS=$(ldns-key2ds -n -2 "$KSK.key" | awk '{print $1" "$4" "$5" "$6" "$7" "$8}')
# in-process validators (hickory) need the WHOLE DNSKEY RRset of test. as anchor
grep -hv '^;' "$ZSK.key" "$KSK.key" > test.dnskeys

knot_conf() { # $1 name $2 port $3.. zones(domain=file)
  local n=$1 p=$2; shift 2
  cat <<EOF
server:
    rundir: "$LAB_DIR/run/$n"
    listen: 127.0.0.1@$p
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$LAB_DIR/db/$n"
control:
    listen: "$LAB_DIR/run/$n/knot.sock"
log:
  - target: "$LAB_DIR/knot-$n.log"
    any: info
template:
  - id: default
    storage: "$LAB_DIR/zones/$n"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
EOF
  for z in "$@"; do echo "  - domain: ${z%%=*}"; echo "    file: ${z#*=}"; done
}
knot_conf parent "$PARENT_PORT" test.=test.signed > knot-parent.conf
knot_conf child "$CHILD_PORT" dane.test.=dane.test.signed broken.test.=broken.test.signed \
  unsigned.test.=unsigned.test.zone _tcp.mx-sf.dane.test.=missing.zone \
  _tcp.mx-sf.unsigned.test.=missing.zone > knot-child.conf

stub() { printf 'stub-zone:\n    name: "%s"\n    stub-addr: 127.0.0.1@%s\n' "$1" "$2"; }
{ cat <<EOF
server:
    directory: "$LAB_DIR"
    chroot: ""
    username: ""
    pidfile: "$LAB_DIR/unbound.pid"
    interface: 127.0.0.1
    port: $UNBOUND_PORT
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: "$LAB_DIR/unbound.log"
    verbosity: 1
    val-log-level: 2
    ede: yes
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor: "$TEST_DS"
    local-zone: "test." transparent
    cache-max-negative-ttl: 5
    cache-max-ttl: 5
    infra-host-ttl: 1
remote-control:
    control-enable: no
EOF
  stub . "$PARENT_PORT"; stub test. "$PARENT_PORT"
  for c in dane broken unsigned; do stub "$c.test." "$CHILD_PORT"; done
  # broken delegations: knot has these zones configured but no zone file -> SERVFAIL
  stub _tcp.mx-sf.dane.test. "$CHILD_PORT"; stub _tcp.mx-sf.unsigned.test. "$CHILD_PORT"
} > unbound.conf
unbound-checkconf unbound.conf >/dev/null
sed -e "s/port: $UNBOUND_PORT/port: $NOVAL_PORT/" \
    -e 's/module-config: "validator iterator"/module-config: "iterator"/' \
    -e '/trust-anchor:/d' -e "s|$LAB_DIR/unbound\.|$LAB_DIR/unbound-noval.|g" unbound.conf > unbound-noval.conf
unbound-checkconf unbound-noval.conf >/dev/null

knotd -c knot-parent.conf >/dev/null 2>&1 & KNOT_PARENT_PID=$!; PIDS+=("$KNOT_PARENT_PID")
knotd -c knot-child.conf  >/dev/null 2>&1 & KNOT_CHILD_PID=$!; PIDS+=("$KNOT_CHILD_PID")
unbound -c unbound.conf   >/dev/null 2>&1 & UNBOUND_PID=$!; PIDS+=("$UNBOUND_PID")
unbound -c unbound-noval.conf >/dev/null 2>&1 & NOVAL_PID=$!; PIDS+=("$NOVAL_PID")
cat > "$STATE" <<EOF
LAB_DIR=$LAB_DIR
PARENT_PORT=$PARENT_PORT
CHILD_PORT=$CHILD_PORT
UNBOUND_PORT=$UNBOUND_PORT
NOVAL_PORT=$NOVAL_PORT
KNOT_PARENT_PID=$KNOT_PARENT_PID
KNOT_CHILD_PID=$KNOT_CHILD_PID
UNBOUND_PID=$UNBOUND_PID
NOVAL_PID=$NOVAL_PID
SPKI_SHA256=$SPKI_SHA256
CA_SPKI_SHA256=$CA_SPKI_SHA256
TEST_DS="$TEST_DS"
TRUST_ANCHOR_FILE=$LAB_DIR/test.dnskeys
MX_CERT=$LAB_DIR/mx.crt
MX_KEY=$LAB_DIR/mx.key
MX_CHAIN=$LAB_DIR/mx-chain.pem
CA_CERT=$LAB_DIR/ca.crt
CA_KEY=$LAB_DIR/ca.key
EOF
[ -z "${SMTP_PORT:-}" ] || echo "SMTP_PORT=$SMTP_PORT" >> "$STATE"
[ -z "${TLSRPT_HTTPS_PORT:-}" ] || echo "TLSRPT_HTTPS_PORT=$TLSRPT_HTTPS_PORT" >> "$STATE"

# readiness: every server answers, and the validating resolver sets AD on a signed answer
q() { dig +time=1 +tries=1 -p "$1" @127.0.0.1 "${@:2}" 2>/dev/null; }
deadline=$(( $(date +%s) + LAB_TIMEOUT ))
until q "$PARENT_PORT" test. SOA +short | grep -q . &&
      q "$CHILD_PORT" dane.test. SOA +short | grep -q . &&
      q "$UNBOUND_PORT" present.dane.test. MX +dnssec | grep -q 'flags:.* ad' &&
      q "$NOVAL_PORT" dane.test. SOA +short | grep -q .; do
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "dnssec-lab: process $p died (logs in $LAB_DIR)" >&2; cleanup_on_error; exit 4; }
  done
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "dnssec-lab: not ready after ${LAB_TIMEOUT}s (logs in $LAB_DIR)" >&2; cleanup_on_error; exit 5
  fi
  sleep 0.05
done
echo "LAB_DIR=$LAB_DIR"
echo "validating resolver 127.0.0.1:$UNBOUND_PORT, non-validating 127.0.0.1:$NOVAL_PORT"
echo "state file: $STATE"
