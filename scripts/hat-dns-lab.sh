#!/usr/bin/env bash
# DNS lab for the hat-match `resolver` tests: one unbound on loopback answering everything from
# local data (no recursion, no root hints, nothing leaves the machine).
#   unbound  127.0.0.1:$HAT_DNS_PORT
# Environment (all optional): HAT_DNS_PORT (default 5399), STATE (env file written for the tests
# and hat-dns-lab-stop.sh), LAB_TIMEOUT (seconds to wait for readiness, default 10).
# Needs: unbound bind9-dnsutils (dig) (scripts/install-deps.sh installs them).
#
# Data (the CRES note of the seed, plus the cases the adapter must get right):
#   184.94.241.96  PTR mxnat3.res.cisco.com   A 184.94.241.96        forward-confirmed
#   198.51.100.7   PTR spoof.res.cisco.com    A 203.0.113.9          forward gives another address
#   208.90.57.32   PTR mx1.cres.example.test  (CIDR client: the tests check it is never asked)
#   192.0.2.60     PTR a.multi.test, b.multi.test, mx.partner.test  (A 192.0.2.60 for the last)
#   2001:db8::25   PTR mx6.res.cisco.com      AAAA 2001:db8::25      IPv6, forward-confirmed
#   dnsbl.test:    2.0.0.127 and 99.2.0.192 listed (A 127.0.0.2), others NXDOMAIN;
#                  5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2 listed
#   refused.test:  every query REFUSED (a DNS list whose lookup fails)
#   everything else: REFUSED (local-zone "." refuse), so nothing is ever recursed.
# Every query is logged (log-queries) to $LAB_DIR/unbound.log, named in the state file.
set -euo pipefail
HAT_DNS_PORT=${HAT_DNS_PORT:-5399}
STATE=${STATE:-${TMPDIR:-/tmp}/hat-dns-lab.env}
LAB_TIMEOUT=${LAB_TIMEOUT:-10}
export PATH="$PATH:/usr/sbin:/sbin"
for tool in unbound unbound-checkconf dig; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "hat-dns-lab: '$tool' not found; run scripts/install-deps.sh" >&2; exit 3; }
done
LAB_DIR=$(mktemp -d /tmp/hat-dns-lab.XXXXXX)
UNBOUND_PID=""
cleanup_on_error() { [ -n "$UNBOUND_PID" ] && kill "$UNBOUND_PID" 2>/dev/null || true; }
trap 'cleanup_on_error' ERR

cat > "$LAB_DIR/unbound.conf" <<EOF
server:
    directory: "$LAB_DIR"
    chroot: ""
    username: ""
    pidfile: "$LAB_DIR/unbound.pid"
    interface: 127.0.0.1
    port: $HAT_DNS_PORT
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: "$LAB_DIR/unbound.log"
    log-queries: yes
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: yes
    module-config: "iterator"
    # Nothing is recursed: every name is local data or refused.
    local-zone: "." refuse
    # The private-range zones unbound serves by default would shadow our data.
    local-zone: "127.in-addr.arpa." nodefault
    local-zone: "2.0.192.in-addr.arpa." nodefault
    local-zone: "100.51.198.in-addr.arpa." nodefault
    local-zone: "113.0.203.in-addr.arpa." nodefault
    local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." nodefault
    local-zone: "in-addr.arpa." static
    local-zone: "ip6.arpa." static
    local-zone: "res.cisco.com." static
    local-zone: "test." static
    local-zone: "refused.test." refuse

    local-data-ptr: "184.94.241.96 mxnat3.res.cisco.com."
    local-data: "mxnat3.res.cisco.com. 300 IN A 184.94.241.96"

    local-data-ptr: "198.51.100.7 spoof.res.cisco.com."
    local-data: "spoof.res.cisco.com. 300 IN A 203.0.113.9"

    local-data-ptr: "208.90.57.32 mx1.cres.example.test."
    local-data: "mx1.cres.example.test. 300 IN A 208.90.57.32"

    local-data: "60.2.0.192.in-addr.arpa. 300 IN PTR a.multi.test."
    local-data: "60.2.0.192.in-addr.arpa. 300 IN PTR b.multi.test."
    local-data: "60.2.0.192.in-addr.arpa. 300 IN PTR mx.partner.test."
    local-data: "a.multi.test. 300 IN A 198.51.100.1"
    local-data: "mx.partner.test. 300 IN A 192.0.2.60"

    local-data-ptr: "2001:db8::25 mx6.res.cisco.com."
    local-data: "mx6.res.cisco.com. 300 IN AAAA 2001:db8::25"

    local-data: "2.0.0.127.dnsbl.test. 300 IN A 127.0.0.2"
    local-data: "99.2.0.192.dnsbl.test. 300 IN A 127.0.0.2"
    local-data: "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.dnsbl.test. 300 IN A 127.0.0.4"
remote-control:
    control-enable: no
EOF
unbound-checkconf "$LAB_DIR/unbound.conf" >/dev/null

unbound -c "$LAB_DIR/unbound.conf" >/dev/null 2>&1 & UNBOUND_PID=$!
cat > "$STATE" <<EOF
LAB_DIR=$LAB_DIR
HAT_DNS_PORT=$HAT_DNS_PORT
UNBOUND_PID=$UNBOUND_PID
QUERY_LOG=$LAB_DIR/unbound.log
EOF

# readiness: the server answers a PTR from its local data
deadline=$(( $(date +%s) + LAB_TIMEOUT ))
until dig +time=1 +tries=1 -p "$HAT_DNS_PORT" @127.0.0.1 -x 184.94.241.96 +short 2>/dev/null |
      grep -q '^mxnat3\.res\.cisco\.com\.$'; do
  kill -0 "$UNBOUND_PID" 2>/dev/null || {
    # Typically its port was taken meanwhile; the caller may retry with another one. The PID is
    # gone: the state file keeps only the directory for the stop script to remove.
    echo "hat-dns-lab: unbound died (log in $LAB_DIR/unbound.log):" >&2
    tail -n 5 "$LAB_DIR/unbound.log" >&2 2>/dev/null || true
    sed -i 's/^UNBOUND_PID=.*/UNBOUND_PID=/' "$STATE"
    exit 4; }
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "hat-dns-lab: not ready after ${LAB_TIMEOUT}s (log in $LAB_DIR)" >&2; cleanup_on_error; exit 5
  fi
  sleep 0.05
done
echo "hat-dns-lab: unbound 127.0.0.1:$HAT_DNS_PORT (pid $UNBOUND_PID), state file $STATE"
