#!/usr/bin/env bash
# Installs the system packages the test suite drives as real peers (Debian/Ubuntu, apt-get):
#   knot + unbound + ldnsutils  the DNSSEC lab (scripts/dnssec-lab.sh)
#   postfix, swaks, openssl     SMTP/TLS interop peers
#   redis-server                the relay's shared state backend (tests start one on loopback)
# Idempotent: does nothing when every tool is already on PATH. Runs apt-get as root or via sudo.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have knotd          || need+=(knot)
have knotc          || need+=(knot)
have unbound        || need+=(unbound)
have ldns-signzone  || need+=(ldnsutils)
have kdig           || need+=(knot-dnsutils)
have dig            || need+=(bind9-dnsutils)
have openssl        || need+=(openssl)
have postfix        || need+=(postfix)
have swaks          || need+=(swaks libnet-ssleay-perl libio-socket-ssl-perl)
have script         || need+=(bsdutils)
have bc             || need+=(bc)
have redis-server   || need+=(redis-server)
perl -MIO::Socket::SSL -e1 2>/dev/null || need+=(libio-socket-ssl-perl libnet-ssleay-perl)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}" >&2
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
# shellcheck disable=SC2068
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${need[@]} >/dev/null
