#!/usr/bin/env bash
# Stops the unbound started by hat-dns-lab.sh (by its PID only) and removes its temp dir.
# Environment: STATE (the state file hat-dns-lab.sh wrote).
set -u
STATE=${STATE:-${TMPDIR:-/tmp}/hat-dns-lab.env}
[ -f "$STATE" ] || { echo "no state file $STATE"; exit 0; }
# shellcheck disable=SC1090
. "$STATE"
pid=${UNBOUND_PID:-}
if [ -n "$pid" ]; then
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
fi
case "${LAB_DIR:-}" in /tmp/hat-dns-lab.*) rm -rf "$LAB_DIR";; esac
rm -f "$STATE"
exit 0
