# Helpers for the guest test scripts (sourced). Results go to $RESULTS (the second serial
# port) as "PASS name" / "FAIL name: why" lines; details go to stdout (the journal and
# the console log the runner shows on failure).

pass() { echo "PASS $1" >&3; echo "PASS $1"; }
fail() { echo "FAIL $1: $2" >&3; echo "FAIL $1: $2"; FAILED=1; }
info() { echo "INFO $*" >&3; echo "INFO $*"; }

# check NAME CMD... : PASS if CMD succeeds; FAIL with its (last) output otherwise.
check() {
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then
    pass "$name"
  else
    fail "$name" "$(printf '%s' "$out" | tail -3 | tr '\n' ' ' | cut -c1-300)"
  fi
}

# check_not NAME CMD... : PASS if CMD fails.
check_not() {
  local name="$1"; shift
  if "$@" >/dev/null 2>&1; then
    fail "$name" "'$*' succeeded but must not"
  else
    pass "$name"
  fi
}

# wait_for SECONDS CMD... : retry CMD every half second until it succeeds or time runs out.
wait_for() {
  local t="$1"; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.5
  done
}
