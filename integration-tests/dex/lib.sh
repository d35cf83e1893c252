# Shared by integration-tests/dex/start and stop. Sourced after ../lab/lib.sh, never run.
# shellcheck shell=bash

# A file every state directory `start` makes holds; `stop` removes only such directories.
DEX_MARKER=.cairn-dex

# is_dex PID: PID is a live dex process.
is_dex() {
  local exe
  [ -d "/proc/$1" ] || return 1
  exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
  [ "$(basename "${exe% (deleted)}")" = dex ]
}

# is_slapd PID: PID is a live slapd (started by `start --ldap`).
is_slapd() {
  local exe
  [ -d "/proc/$1" ] || return 1
  exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
  [ "$(basename "${exe% (deleted)}")" = slapd ]
}
