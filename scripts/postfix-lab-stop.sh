#!/usr/bin/env bash
# Stops the Postfix instance started by scripts/postfix-lab.sh in LAB_DIR and removes LAB_DIR.
#   scripts/postfix-lab-stop.sh LAB_DIR
set -uo pipefail
LAB_DIR=${1:?usage: postfix-lab-stop.sh LAB_DIR}
[ -f "$LAB_DIR/state" ] || [ -d "$LAB_DIR/etc" ] || { echo "no lab in $LAB_DIR" >&2; exit 1; }
if [ -d "$LAB_DIR/etc" ]; then
  script -qec "postfix -c $LAB_DIR/etc stop" /dev/null >/dev/null 2>&1 || true
fi
# If the master is still alive after a bounded wait, end it by its PID.
pid=$(sed -n 's/^MASTER_PID=//p' "$LAB_DIR/state" 2>/dev/null)
for _ in $(seq 1 50); do
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
rm -rf "$LAB_DIR"
