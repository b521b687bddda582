# Shared by the CLI tests that run `noema serve` (serve_test.sh, crash_test.sh): a work
# directory and a cleanup that kills what is left, the ok/fail/check reporting, starting
# a server on a free port and stopping it, and the final verdict.
# The sourcing script sets `noema` (the binary) and `store` (its store URI) first.
# Not a test itself: tests/cli/*.sh are the tests, this folder is not globbed.
work=$(mktemp -d)
server_pid=""
loader_pids=()
cleanup() {
  for pid in "${loader_pids[@]}"; do kill "$pid" 2>/dev/null; done
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0

ok() { echo "ok: $1"; }
fail() {
  echo "FAIL: $1"
  failures=$((failures + 1))
}
check() {  # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}


# start_server NAME [FLAGS...]: starts `noema serve` on a free port; sets server_pid, port.
start_server() {
  local name=$1
  shift
  if [ -n "${server_ulimit:-}" ]; then  # ulimit -n for the server alone ("-S 100", "256")
    bash -c 'ulimit -n $0; exec "$@"' "$server_ulimit" "$noema" serve --store "$store" "$@" \
      >"${server_stdout:-$work/$name.out}" 2>"$work/$name.err" &
  else
    "$noema" serve --store "$store" "$@" >"${server_stdout:-$work/$name.out}" 2>"$work/$name.err" &
  fi
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's|.*serving on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$work/$name.err")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    fail "$name: no 'serving on' line"
    cat "$work/$name.err"
    exit 1
  fi
  base="http://127.0.0.1:$port"
}

# stop_server NAME: SIGTERM, then the exit status must be 0.
stop_server() {
  kill -TERM "$server_pid"
  local status=0
  wait "$server_pid" || status=$?
  server_pid=""
  check "$1: exits 0 on SIGTERM" [ "$status" -eq 0 ]
  check "$1: reports the stop" grep -q "noema: stopped" "$work/$1.err"
}

# event_load N NAME: POSTs $event (one event per request, with $service_token) until
# the server goes away; the acknowledged eventIds go to $work/NAME.N.
event_load() {
  local n=$1 out="$work/$2.$1" reply
  : >"$out"
  while true; do
    reply=$(curl -s --max-time 10 -w ' %{http_code}' -X POST \
      -H "Authorization: Bearer $service_token" -H 'Content-Type: application/json' \
      --data "$event" "$base/v1/events") || break
    case "$reply" in
      *' 201') echo "$reply" | sed -n 's/.*"eventId":"\([0-9a-f]\{24\}\)".*/\1/p' >>"$out" ;;
      *' 000') break ;;
    esac
  done
}

# finish: the verdict — exit 1 when any check failed.
finish() {
  [ "$failures" -eq 0 ] || {
    echo "$failures failure(s)"
    exit 1
  }
}
