# Shared by integration-tests/nats/start and stop. Sourced after ../lab/lib.sh, never run.
# shellcheck shell=bash

# A file every state directory `start` makes holds; `stop` removes only such directories.
NATS_MARKER=.cairn-nats

# is_nats PID: PID is a live nats-server process.
is_nats() {
  local exe
  [ -d "/proc/$1" ] || return 1
  exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
  [ "$(basename "${exe% (deleted)}")" = nats-server ]
}
