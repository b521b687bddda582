#!/usr/bin/env bash
# HTTP benchmark of `noema serve` against nginx (Debian's package, `return 204;`) in one
# run, with the same wrk settings for both (issue 4, "Performance"):
#
#   by-identity   GET /v1/users/by-identity/bench/<id> for pre-resolved users (a Lua
#                 script picks one at random per request)
#   event         POST /v1/events, one event per request (acknowledged = durable)
#   batch100      POST /v1/events with {"events":[100 events]}
#
# For each: requests/s, p50 and p99 latency (medians of ROUNDS alternating runs), the
# ratio to nginx; at the end the peak RSS of `noema serve` (VmHWM) and its own memory
# apart from the mapped database file (RssAnon), and what the single-event scenario cost
# the disk over all its rounds (bytes written per event, commits, fsyncs). Prints a
# Markdown table for docs/benchmarks.md.
#
# usage: bench/http/run.sh [NOEMA_BINARY]     (default: build/noema)
# env:   DURATION (10s per run) ROUNDS (3 runs of each server per scenario, alternating)
#        THREADS (2) CONNECTIONS (32) USERS (1000) NOEMA_THREADS (server I/O threads,
#        default: noema's own) BENCH_DIR (where the store lives; default a temporary
#        directory under /tmp)
# needs: wrk, nginx, curl (scripts/setup installs them)
set -euo pipefail

project=$(cd "$(dirname "$0")/../.." && pwd)
noema=${1:-$project/build/noema}
duration=${DURATION:-10s}
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
connections=${CONNECTIONS:-32}
users=${USERS:-1000}
[[ "$duration" =~ ^[1-9][0-9]*s$ ]] || { echo "bench: DURATION is seconds, like 10s" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || { echo "bench: ROUNDS is 1..99" >&2; exit 2; }
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/setup)" >&2; exit 2; }
done
[ -x "$noema" ] || { echo "bench: no noema binary at $noema" >&2; exit 2; }

work=$(mktemp -d "${BENCH_DIR:-/tmp}/noema-http-bench-XXXXXX")
noema_pid=""
cleanup() {
  [ -n "$noema_pid" ] && kill "$noema_pid" 2>/dev/null && wait "$noema_pid" 2>/dev/null
  [ -f "$work/nginx/nginx.pid" ] && kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- nginx: the reference for "as fast as HTTP goes on this machine" ------------------
nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    client_max_body_size 2m;
    location / { return 204; }
  }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"

# ---- noema serve ------------------------------------------------------------------------
token="bench-service-token-0123456789"
server_flags=(--store "sqlite:$work/data/noema.db" --listen 127.0.0.1:0 --quiet
  --rate-limit-per-second 1000000000 --rate-limit-burst 1000000000
  --service-rate-limit-per-second 1000000000 --service-rate-limit-burst 1000000000)
[ -n "${NOEMA_THREADS:-}" ] && server_flags+=(--threads "$NOEMA_THREADS")
NOEMA_SERVICE_TOKENS="bench=$token" NOEMA_ADMIN_TOKEN="bench-admin-token-0123456789" \
  "$noema" serve "${server_flags[@]}" >"$work/noema.out" 2>"$work/noema.err" &
noema_pid=$!
noema_port=""
for _ in $(seq 1 100); do
  noema_port=$(sed -n 's|.*serving on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$work/noema.err")
  [ -n "$noema_port" ] && break
  sleep 0.1
done
[ -n "$noema_port" ] || { echo "bench: noema did not start" >&2; cat "$work/noema.err" >&2; exit 1; }

# ---- data: USERS users resolved through the API ----------------------------------------
echo "bench: resolving $users users..." >&2
seq 1 "$users" | xargs -P 16 -I{} curl -sf -o /dev/null -X POST \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data '{"platform":"bench","platformUserId":"user-{}"}' \
  "http://127.0.0.1:$noema_port/v1/users/resolve"
ids_file="$work/ids.lua"
{
  echo "ids = {"
  for i in $(seq 1 "$users"); do
    curl -sf -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$noema_port/v1/users/by-identity/bench/user-$i" |
      sed -n 's/.*"masterAccountId":"\([0-9a-f]\{24\}\)".*/  {"user-'"$i"'", "\1"},/p'
    echo  # the reply has no final newline
  done
  echo "}"
} >"$ids_file"
resolved=$(grep -c '^  {' "$ids_file")
[ "$resolved" -eq "$users" ] || { echo "bench: only $resolved of $users users resolved" >&2; exit 1; }

# ---- wrk scripts ------------------------------------------------------------------------
common="dofile(\"$ids_file\")
math.randomseed(os.time())
wrk.headers[\"Authorization\"] = \"Bearer $token\"
wrk.headers[\"Content-Type\"] = \"application/json\"
function event_json(i)
  return '{\"masterAccountId\":\"' .. ids[i][2] .. '\",\"eventType\":\"menu_item_clicked\",' ..
         '\"sourcePlatform\":\"bench\",\"eventData\":{\"menuName\":\"main\",' ..
         '\"itemId\":\"settings\",\"actionType\":\"open\"}}'
end"
cat >"$work/by_identity.lua" <<EOF
$common
request = function()
  return wrk.format("GET", "/v1/users/by-identity/bench/" .. ids[math.random(#ids)][1])
end
EOF
cat >"$work/event.lua" <<EOF
$common
request = function()
  return wrk.format("POST", "/v1/events", nil, event_json(math.random(#ids)))
end
EOF
cat >"$work/batch100.lua" <<EOF
$common
request = function()
  local items = {}
  for k = 1, 100 do items[k] = event_json(math.random(#ids)) end
  return wrk.format("POST", "/v1/events", nil, '{"events":[' .. table.concat(items, ",") .. ']}')
end
EOF

# ---- runs -------------------------------------------------------------------------------
to_ms() {  # wrk latency ("812.00us", "3.21ms", "1.02s") → milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000
    printf "%.2f", n }'
}
run_wrk() {  # run_wrk NAME SCRIPT PORT PATH → "rps p50 p99 errors"
  local out="$work/$1.txt"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$2" "http://127.0.0.1:$3$4" >"$out"
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {
      for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i } END {print n + 0}' "$out")
  echo "$rps $p50 $p99 $errors"
}

# The peak of noema's own memory (RssAnon), sampled: VmHWM also counts the pages of the
# memory-mapped database file (page cache, shared and reclaimable), which grow with the
# database the benchmark itself writes.
anon_peak_file="$work/anon_peak_kb"
echo 0 >"$anon_peak_file"
(
  peak=0
  while kill -0 "$noema_pid" 2>/dev/null; do
    kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$noema_pid/status" 2>/dev/null)
    if [ -n "$kb" ] && [ "$kb" -gt "$peak" ]; then peak=$kb; echo "$peak" >"$anon_peak_file"; fi
    sleep 0.2
  done
) &
sampler_pid=$!

# What the single-event scenario cost the disk: bytes noema sent to storage (the WAL and
# the checkpoints' copies into the database file), events stored, and the group sync's
# commits and fsyncs (docs/storage.md "Group sync").
io_snapshot() {
  local metrics
  metrics=$(curl -sf http://127.0.0.1:"$noema_port"/metrics)
  echo "$(awk '/^write_bytes:/ {print $2}' "/proc/$noema_pid/io")" \
    "$(awk '/^noema_events_ingested / {print $2}' <<<"$metrics")" \
    "$(awk '/^noema_store_group_commits_total / {print $2}' <<<"$metrics")" \
    "$(awk '/^noema_store_group_fsyncs_total / {print $2}' <<<"$metrics")"
}

# Each scenario runs ROUNDS times, nginx and noema alternating, so that both meet the
# same machine: on a shared virtual machine one 10-second run of either can be 10-20 %
# off the next (docs/benchmarks.md, session 8). The table gives the median run of each
# server and the ratio of the medians; "per round" is the lowest and highest of the
# rounds' own noema/nginx ratios.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {
    if (NR == 0) { print 0; exit }
    print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }
echo "| scenario | server | requests/s (median of $rounds) | range | p50 ms | p99 ms | errors | noema/nginx (medians) | per round |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for scenario in by_identity event batch100; do
  path=/v1/events
  [ "$scenario" = by_identity ] && path=/v1/users/by-identity/bench/user-1
  n_rps_all="" n_p50_all="" n_p99_all="" n_err=0
  q_rps_all="" q_p50_all="" q_p99_all="" q_err=0 ratios=""
  for round in $(seq 1 "$rounds"); do
    read -r n_rps n_p50 n_p99 n_errors <<<"$(run_wrk "nginx-$scenario-$round" "$work/$scenario.lua" "$nginx_port" "$path")"
    [ "$scenario" = event ] && [ "$round" = 1 ] && io_before=$(io_snapshot)
    read -r q_rps q_p50 q_p99 q_errors <<<"$(run_wrk "noema-$scenario-$round" "$work/$scenario.lua" "$noema_port" "$path")"
    [ "$scenario" = event ] && io_after=$(io_snapshot)
    n_rps_all+=" $n_rps" n_p50_all+=" $n_p50" n_p99_all+=" $n_p99" n_err=$((n_err + n_errors))
    q_rps_all+=" $q_rps" q_p50_all+=" $q_p50" q_p99_all+=" $q_p99" q_err=$((q_err + q_errors))
    ratios+=" $(awk -v a="$q_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
    echo "bench: $scenario round $round: nginx $n_rps/s, noema $q_rps/s" >&2
  done
  n_med=$(median <<<"$n_rps_all")
  q_med=$(median <<<"$q_rps_all")
  ratio=$(awk -v a="$q_med" -v b="$n_med" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
  echo "| $scenario | nginx | $n_med | $(range <<<"$n_rps_all") | $(median <<<"$n_p50_all") |" \
    "$(median <<<"$n_p99_all") | $n_err | | |"
  echo "| $scenario | noema | $q_med | $(range <<<"$q_rps_all") | $(median <<<"$q_p50_all") |" \
    "$(median <<<"$q_p99_all") | $q_err | $ratio | $(range <<<"$ratios") |"
done
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$noema_pid/status")
file_kb=$(awk '/^RssFile:/ {print $2}' "/proc/$noema_pid/status")
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
echo
echo "peak RSS of noema serve (VmHWM): $((hwm_kb / 1024)) MB, of which file-backed at the end" \
  "(the mapped database, RssFile): $((file_kb / 1024)) MB"
echo "peak anonymous RSS of noema serve (RssAnon, sampled every 0.2 s): $(($(cat "$anon_peak_file") / 1024)) MB"
read -r w0 e0 c0 f0 <<<"$io_before"
read -r w1 e1 c1 f1 <<<"$io_after"
awk -v w="$((w1 - w0))" -v e="$((e1 - e0))" -v c="$((${c1:-0} - ${c0:-0}))" \
  -v f="$((${f1:-0} - ${f0:-0}))" -v d="$(( ${duration%s} * rounds ))" 'BEGIN {
    printf "single-event scenario: %d events, %.1f KB written to disk per event, %d commits", \
      e, (e > 0 ? w / e / 1024 : 0), c
    printf " (%.1f events each), %d fsyncs (%.1f ms apart)\n", (c > 0 ? e / c : 0), f, \
      (f > 0 ? 1000 * (d + 0) / f : 0)
  }'
echo "events stored: $(curl -sf http://127.0.0.1:"$noema_port"/metrics | awk '/^noema_events_ingested / {print $2}')"
echo "settings: wrk -t$threads -c$connections -d$duration, $rounds rounds; noema I/O threads: ${NOEMA_THREADS:-default}; users: $users"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(. /etc/os-release && echo "$PRETTY_NAME"), load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
