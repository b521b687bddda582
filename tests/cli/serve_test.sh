#!/usr/bin/env bash
# `noema serve` run as an operator would: the port printed for --listen HOST:0, the
# generated admin token (printed once, only its hash kept, mode 0600), the access log
# (no secrets), SIGTERM during a write load (every acknowledged event is there after a
# restart), /metrics on a listener of its own (--metrics-listen), and usage errors (exit
# 2, one line).
# usage: serve_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
. "$(dirname "$0")/support/serve_harness.bash"

service_token="platform-token-0123456789"
export NOEMA_SERVICE_TOKENS="telegram-bot=$service_token"
unset NOEMA_ADMIN_TOKEN NOEMA_LISTEN NOEMA_STORE
store="sqlite:$work/data/noema.db"
port=""
base=""

api() {  # api METHOD PATH [BODY [TOKEN]] → body on stdout; status in $work/status
  local token=${4:-$service_token}
  curl -s -o "$work/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$base$2" >"$work/status"
  cat "$work/body"
}

# ---- usage errors: exit 2 and one line, nothing created --------------------------------
usage_error() {  # usage_error NAME ARGS...
  local name=$1
  shift
  "$noema" serve --store "$store" "$@" </dev/null >"$work/usage.out" 2>&1
  local status=$?
  check "$name exits 2" [ "$status" -eq 2 ]
  if [ "$(wc -l <"$work/usage.out")" -eq 1 ]; then ok "$name gives one line"; else
    fail "$name output is not one line"
    cat "$work/usage.out"
  fi
}
usage_error "unknown flag" --bogus
usage_error "malformed --listen" --listen nonsense
usage_error "port out of range" --listen 127.0.0.1:70000
usage_error "--threads 0" --threads 0
usage_error "--worker-threads 1025" --worker-threads 1025
usage_error "--unknown-events maybe" --unknown-events maybe
usage_error "--archetype-rules of a missing file" --archetype-rules "$work/no-rules.json"
echo '{"touchAndGoSessionsMax": -1}' >"$work/bad-rules.json"
usage_error "--archetype-rules with a negative threshold" --archetype-rules "$work/bad-rules.json"
check "which names the setting" grep -q "touchAndGoSessionsMax" "$work/usage.out"
# Every numeric limit one step outside its range, on both sides (docs/limits.md).
while read -r flag value; do usage_error "$flag $value" "$flag" "$value"; done <<'CASES'
--threads 257
--worker-threads -1
--body-bytes-max 1023
--body-bytes-max 67108865
--body-bytes-max -1
--header-bytes-max 1023
--header-bytes-max 1048577
--read-timeout-ms 99
--read-timeout-ms 3600001
--idle-timeout-ms 99
--idle-timeout-ms 3600001
--connections-max 0
--connections-max 1000001
--rate-limit-per-second 0
--rate-limit-per-second nan
--rate-limit-per-second inf
--rate-limit-per-second 1000000001
--rate-limit-burst 0.5
--rate-limit-burst 1000000001
--service-rate-limit-per-second 0
--service-rate-limit-per-second 1000000001
--service-rate-limit-burst 0.5
--service-rate-limit-burst 1000000001
--session-timeout-minutes 0
--session-timeout-minutes 1441
--generation-deadline-minutes 0
--generation-deadline-minutes 10081
--sweep-interval-seconds 0
--sweep-interval-seconds 3601
CASES
if grep -q "body-bytes-max is 1024..67108864" <("$noema" serve --store "$store" --body-bytes-max 1 2>&1); then
  ok "a limit's error names the flag and its range"
else fail "a limit's error does not name the flag and its range"; fi
usage_error "malformed --metrics-listen" --metrics-listen nonsense
usage_error "--metrics-listen on the API's address" --listen 127.0.0.1:18999 \
  --metrics-listen 127.0.0.1:18999
NOEMA_SERVICE_TOKENS="bot=short" usage_error "a service token under 16 characters"
NOEMA_SERVICE_TOKENS="no-equals-sign" usage_error "a malformed NOEMA_SERVICE_TOKENS"
NOEMA_SERVICE_TOKENS="admin=0123456789abcdef0" usage_error "a service token named admin"
usage_error "a service token given twice" --service-tokens a=0123456789abcdef0,b=0123456789abcdef0
if grep -q "^noema: .*--service-tokens\[1\]" "$work/usage.out"; then
  ok "the error names the flag's entry"; else fail "the error does not name --service-tokens[1]"; cat "$work/usage.out"; fi
# A host name other than localhost is refused before anything is created (it was found
# only after the store and an admin token had been made).
usage_error "--listen with a host name" --listen example.com:8080
usage_error "a bracketed host that is not an address" --listen "[not-an-address]:8080"
check "usage errors create no data directory" [ ! -e "$work/data" ]

# ---- every numeric limit at an inclusive edge is accepted ------------------------------
edges() {  # edges NAME FLAGS...: the server starts with them and answers /healthz
  local name=$1
  shift
  start_server "$name" --listen 127.0.0.1:0 --admin-token edge-admin-token-0123456789 "$@"
  check "$name: serves" [ "$(curl -s "$base/healthz")" = '{"status":"ok"}' ]
  stop_server "$name"
}
edges "the lower edges" --threads 1 --worker-threads 0 --body-bytes-max 1024 \
  --header-bytes-max 1024 --read-timeout-ms 100 --idle-timeout-ms 100 --connections-max 1 \
  --rate-limit-per-second 0.001 --rate-limit-burst 1 --service-rate-limit-per-second 0.001 \
  --service-rate-limit-burst 1 --session-timeout-minutes 1 \
  --generation-deadline-minutes 1 --sweep-interval-seconds 1
edges "the upper edges" --threads 256 --worker-threads 1024 --body-bytes-max 67108864 \
  --header-bytes-max 1048576 --read-timeout-ms 3600000 --idle-timeout-ms 3600000 \
  --connections-max 1000000 --rate-limit-per-second 1000000000 --rate-limit-burst 1000000000 \
  --service-rate-limit-per-second 1000000000 --service-rate-limit-burst 1000000000 \
  --session-timeout-minutes 1440 --generation-deadline-minutes 10080 --sweep-interval-seconds 3600
# localhost is an accepted form of HOST (127.0.0.1).
start_server listen-localhost --listen localhost:0 --admin-token edge-admin-token-0123456789
check "--listen localhost: serves" [ "$(curl -s "$base/healthz")" = '{"status":"ok"}' ]
stop_server listen-localhost

# An admin token file that is not a SHA-256 digest (damaged, edited, upper case) is refused
# and left as it is: neither trusted (a 401 for the admin with no reason) nor replaced by
# a new token.
mkdir -p "$work/damaged"
for content in "" "not-a-digest" "$(printf '%064d' 0 | tr 0 A)"; do
  printf '%s\n' "$content" >"$work/damaged/admin_token.sha256"
  "$noema" serve --store "sqlite:$work/damaged/noema.db" --listen 127.0.0.1:0 </dev/null \
    >"$work/damaged.out" 2>&1
  check "a damaged admin token file ('$content') stops serve" [ $? -eq 1 ]
  check "the error names the file" grep -q "admin_token.sha256 is not an admin token's SHA-256" "$work/damaged.out"
  check "the file is left as it was" [ "$(cat "$work/damaged/admin_token.sha256")" = "$content" ]
done
rm -rf "$work/data"  # the first start below makes the admin token

# ---- first start: the admin token is generated, printed once, kept hashed -------------
start_server first --listen 127.0.0.1:0
ok "first start serves on port $port"
admin_token=$(grep -o 'noema_admin_[0-9a-f]*' "$work/first.err" | head -1)
check "an admin token is printed" [ -n "$admin_token" ]
# Once on its own line, once in the dashboard URL (`#token=...`, docs/demo.md).
check "it is printed once (and in the dashboard URL)" \
  [ "$(grep -c "$admin_token" "$work/first.err")" -eq 2 ]
check "the dashboard URL carries it" grep -q "/dashboard#token=$admin_token\$" "$work/first.err"
hash_file="$work/data/admin_token.sha256"
check "its hash is kept in the data directory" [ -f "$hash_file" ]
check "the hash file is mode 0600" [ "$(stat -c %a "$hash_file")" = "600" ]
expected_hash=$(printf '%s' "$admin_token" | sha256sum | cut -d' ' -f1)
check "the file holds the token's SHA-256" [ "$(tr -d '\n' <"$hash_file")" = "$expected_hash" ]
if grep -rqa -- "$admin_token" "$work/data"; then fail "the plaintext admin token is stored"; else
  ok "the plaintext admin token is not stored"; fi

check "/healthz answers" [ "$(curl -s "$base/healthz")" = '{"status":"ok"}' ]
check "/v1/openapi.yaml is served" bash -c "curl -s '$base/v1/openapi.yaml' | head -1 | grep -q '^openapi: 3'"
user=$(api POST /v1/users/resolve '{"platform":"telegram","platformUserId":"serve-test"}' |
  sed -n 's/.*"masterAccountId":"\([0-9a-f]\{24\}\)".*/\1/p')
check "resolve makes a user" [ "$(cat "$work/status")" = 201 ]
[ -n "$user" ] || { fail "no masterAccountId in the resolve reply"; exit 1; }
api POST "/v1/users/$user/awards" '{"awardId":"operator_test"}' "$admin_token" >/dev/null
check "the generated admin token works" [ "$(cat "$work/status")" = 201 ]
api POST "/v1/users/$user/awards" '{"awardId":"operator_test"}' >/dev/null
check "a service token is not the admin token" [ "$(cat "$work/status")" = 403 ]

# ---- SIGTERM during a write load: every acknowledged event survives -------------------
event='{"masterAccountId":"'$user'","eventType":"menu_item_clicked","sourcePlatform":"telegram","eventData":{"menuName":"main","itemId":"x","actionType":"open"}}'
for n in 1 2 3 4; do
  event_load "$n" acked &
  loader_pids+=($!)
done
for _ in $(seq 1 100); do
  [ "$(cat "$work"/acked.* 2>/dev/null | wc -l)" -ge 40 ] && break
  sleep 0.1
done
stop_server first
for pid in "${loader_pids[@]}"; do wait "$pid" 2>/dev/null; done
loader_pids=()
sort -u "$work"/acked.* >"$work/acked"
acked=$(wc -l <"$work/acked")
check "events were acknowledged under load ($acked)" [ "$acked" -ge 40 ]

# The access log: JSON lines with the credential's name, never a secret.
check "the access log has JSON lines" grep -q '"route":"/v1/events","status":201' "$work/first.out"
check "the access log names the credential" grep -q '"credential":"telegram-bot"' "$work/first.out"
if grep -q -e "$service_token" -e "$admin_token" "$work/first.out"; then
  fail "a token is in the access log"
else ok "no token in the access log"; fi

# ---- restart (NOEMA_LISTEN instead of --listen): the acknowledged events are there -----
NOEMA_LISTEN=127.0.0.1:0 start_server second
if grep -q "generated an admin token" "$work/second.err"; then fail "a second admin token was made"
else ok "the admin token is not generated again"; fi
api POST "/v1/users/$user/awards" '{"awardId":"operator_test"}' "$admin_token" >/dev/null
check "the admin token still works after a restart" [ "$(cat "$work/status")" = 200 ]

: >"$work/stored"
cursor=""
for _ in $(seq 1 100); do
  page=$(api GET "/v1/events?masterAccountId=$user&eventType=menu_item_clicked&limit=500${cursor:+&cursor=$cursor}")
  echo "$page" | grep -o '"eventId":"[0-9a-f]\{24\}"' | cut -d'"' -f4 >>"$work/stored"
  cursor=$(echo "$page" | sed -n 's/.*"nextCursor":"\([^"]*\)".*/\1/p')
  [ -z "$cursor" ] && break
done
sort -u -o "$work/stored" "$work/stored"
missing=$(comm -23 "$work/acked" "$work/stored" | wc -l)
check "every acknowledged event is stored after the restart ($acked acked, $(wc -l <"$work/stored") stored)" [ "$missing" -eq 0 ]
stop_server second

# ---- --metrics-listen: /metrics on a listener of its own, not on the API's ------------
NOEMA_METRICS_LISTEN=127.0.0.1:0 start_server third --listen 127.0.0.1:0
metrics_port=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9][0-9]*\)/metrics.*|\1|p' \
  "$work/third.err")
check "the metrics listener's port is printed" [ -n "$metrics_port" ]
check "the API listener does not serve /metrics" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")" = 404 ]
check "the metrics listener does" \
  bash -c "curl -s 'http://127.0.0.1:$metrics_port/metrics' | grep -q '^noema_events_ingested '"
check "HEAD /metrics answers there too" \
  [ "$(curl -s -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/metrics")" = 200 ]
check "and only the metrics" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/healthz")" = 404 ]
stop_server third

# ---- the access log's reader goes away: noema serves on ---------------------------------
# stdout is a pipe whose reader exits after one byte; the next log line meets EPIPE (with
# SIGPIPE's default action the process would end). noema says so once and serves on.
mkfifo "$work/log.fifo"
head -c 1 <"$work/log.fifo" >/dev/null &
reader_pid=$!
server_stdout="$work/log.fifo" start_server closedlog --listen 127.0.0.1:0
curl -s -o /dev/null "$base/healthz"  # its log line feeds the reader its byte
wait "$reader_pid"
answered=0
for _ in $(seq 1 5); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz")" = 200 ] && answered=$((answered + 1))
done
check "requests are answered after the access log's reader is gone ($answered of 5)" [ "$answered" -eq 5 ]
check "the server is still running" kill -0 "$server_pid"
check "it says once that the log is off" \
  [ "$(grep -c 'the access log cannot be written' "$work/closedlog.err")" -eq 1 ]
stop_server closedlog

# ---- the open-file limit ----------------------------------------------------------------
# A hard limit too low for --connections-max: noema serves fewer connections, says how
# many, and answers the ones past that with 503 (past the file limit itself, accept()
# would fail and they would wait unanswered).
server_ulimit=256 start_server lowlimit --listen 127.0.0.1:0 --quiet
room=$(sed -n 's/.*leaves room for \([0-9][0-9]*\) connections, not the 2048 of --connections-max.*/\1/p' \
  "$work/lowlimit.err")
check "a hard limit of 256 open files is reported with the connections it leaves ($room)" \
  [ -n "$room" ]
if [ -n "$room" ]; then
  /usr/bin/python3 - "$port" "$room" >"$work/lowlimit.py.out" 2>&1 <<'PY'
import socket, sys, time
port, room = int(sys.argv[1]), int(sys.argv[2])
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(room + 40)]
time.sleep(1)
waiting = refused = other = 0
for c in clients:
    c.setblocking(False)
    try:
        data = c.recv(64)
        if data.startswith(b"HTTP/1.1 503"): refused += 1
        else: other += 1
    except BlockingIOError:
        waiting += 1  # accepted, the server waits for its request
print(f"waiting={waiting} refused={refused} other={other}")
for c in clients: c.close()
PY
  check "it keeps $room connections and refuses the rest with 503 ($(cat "$work/lowlimit.py.out"))" \
    grep -qx "waiting=$room refused=40 other=0" "$work/lowlimit.py.out"
  check "and serves once they are gone" [ "$(curl -s "$base/healthz")" = '{"status":"ok"}' ]
fi
stop_server lowlimit
# A soft limit under what is needed, with room under the hard one: raised, silently.
server_ulimit="-S 100" start_server softlimit --listen 127.0.0.1:0 --quiet
soft=$(awk '/Max open files/ {print $4}' "/proc/$server_pid/limits")
check "a soft limit of 100 is raised for 2048 connections ($soft)" [ "$soft" -gt 2048 ]
if grep -q "leaves room" "$work/softlimit.err"; then fail "it warned although it could raise"; else
  ok "without a warning"; fi
stop_server softlimit

finish
