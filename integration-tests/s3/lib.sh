# Shared by integration-tests/s3/start and stop. Sourced after ../lab/lib.sh, never run.
# shellcheck shell=bash

# A file every state directory `start` makes holds; `stop` removes only such directories.
S3_MARKER=.cairn-s3
# SeaweedFS accepts any region in a signature; clients must still name one.
S3_REGION_DEFAULT=us-east-1

# random_hex BYTES: BYTES random bytes as lower-case hex.
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# is_weed PID: PID is a live SeaweedFS `weed` process.
is_weed() {
  local exe
  [ -d "/proc/$1" ] || return 1
  exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
  [ "$(basename "${exe% (deleted)}")" = weed ]
}
