#!/usr/bin/env bash
# Stops the processes started by dnssec-lab.sh (by PID only) and removes its temp dir.
# Environment: STATE (the state file dnssec-lab.sh wrote).
set -u
STATE=${STATE:-${TMPDIR:-/tmp}/dnssec-lab.env}
[ -f "$STATE" ] || { echo "no state file $STATE"; exit 0; }
# shellcheck disable=SC1090
. "$STATE"
PIDS="${NOVAL_PID:-} ${UNBOUND_PID:-} ${KNOT_CHILD_PID:-} ${KNOT_PARENT_PID:-}"
for pid in $PIDS; do kill "$pid" 2>/dev/null; done
for pid in $PIDS; do
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
done
case "${LAB_DIR:-}" in /tmp/dnssec-lab.*) rm -rf "$LAB_DIR";; esac
rm -f "$STATE"
exit 0
