#!/usr/bin/env bash
# Runs the Ferry agent on this machine, in the foreground (Ctrl-C stops it).
#
# The first run sets this device up on the embedded default: a folder repository under the Ferry
# home ($XDG_DATA_HOME/ferry, or --home / FERRY_HOME) with a relay on 127.0.0.1, which this
# script starts whenever the device is configured to use it. A device set up on a bucket or a
# WebDAV server (`ferry init --store URL`) just runs its agent.
#
# FERRY_BUILD=debug builds without optimisations (faster to build, for trying things out).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${FERRY_BUILD:-release}
flags=(--locked -p ferry -p ferry-relay)
[[ $profile == release ]] && flags+=(--release)
cargo build --quiet "${flags[@]}"
bin="${CARGO_TARGET_DIR:-target}/$profile"

local_addr=${FERRY_LOCAL_RELAY:-127.0.0.1:8787}
local_url="ws://$local_addr"

relay=$("$bin/ferry" "$@" config get relay 2>/dev/null || true)
if ! "$bin/ferry" "$@" config get store >/dev/null 2>&1; then
    # First run: the agent sets the device up with the local relay.
    export FERRY_RELAY=$local_url
    relay=$local_url
fi

if [[ $relay == "$local_url" ]] && ! (exec 3<>"/dev/tcp/${local_addr%:*}/${local_addr##*:}") 2>/dev/null; then
    "$bin/ferry-relay" --listen "$local_addr" &
    relay_pid=$!
    trap 'kill "$relay_pid" 2>/dev/null; wait "$relay_pid" 2>/dev/null || true' EXIT
fi

"$bin/ferry" "$@" agent &
agent_pid=$!
trap 'kill -TERM "$agent_pid" 2>/dev/null || true' INT TERM
status=0
# A signal interrupts `wait`; the loop then waits for the agent's clean stop.
while kill -0 "$agent_pid" 2>/dev/null; do
    wait "$agent_pid" && status=0 || status=$?
done
exit "$status"
