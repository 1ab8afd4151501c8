#!/bin/sh
# Container entrypoint: `aisnode FLAGS...` with --host filled in.
#
# aisnode listens on --host and advertises it in the cluster map, so it must
# be an address the other nodes and the clients can reach (never 0.0.0.0).
# Order: an explicit --host flag, else $AIS_HOST (Kubernetes: the pod IP from
# the downward API), else this container's own address.
# A first argument that is not a flag runs that command instead (`ais ...`, `sh`).
# $AISNODE overrides the binary (scripts/deploy-smoke runs a local build).
set -eu
bin=${AISNODE:-/usr/local/bin/aisnode}

case "${1:-}" in
  -*|"") ;;
  *) exec "$@" ;;
esac

for a in "$@"; do
  case "$a" in
    --host|--host=*) exec "$bin" "$@" ;;
  esac
done

host=${AIS_HOST:-}
if [ -z "$host" ]; then
  host=$(getent ahostsv4 "$(uname -n)" || true)
  host=${host%% *}
fi
case "$host" in
  ""|127.*)
    echo "aisnode-entrypoint: cannot tell this container's address (got '${host}'): set AIS_HOST or pass --host" >&2
    exit 2 ;;
esac
exec "$bin" --host "$host" "$@"
