#!/usr/bin/env bash
# `noema serve` killed with SIGKILL — a crash: no graceful stop, nothing flushed on the way
# out — while clients move money (debits and credits with Idempotency-Keys) and post
# events. Then:
#   - `noema ledger verify` finds every transaction chain whole and summing to the balance;
#   - after a restart, every acknowledged credit, debit and event is there;
#   - the requests that got no reply, retried with their Idempotency-Keys, move money at
#     most once per key (either the first reply, if the crash came after the commit, or
#     the one application), and the balance is the opening credit plus the ledger.
# (SIGTERM during load is serve_test.sh's.)
# usage: crash_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
. "$(dirname "$0")/support/serve_harness.bash"

service_token="platform-token-0123456789"
export NOEMA_SERVICE_TOKENS="telegram-bot=$service_token"
export NOEMA_ADMIN_TOKEN="crash-test-admin-token-0123456789"
unset NOEMA_LISTEN NOEMA_STORE NOEMA_METRICS_LISTEN
store="sqlite:$work/data/noema.db"
serve_flags=(--listen 127.0.0.1:0 --quiet --service-rate-limit-per-second 1000000
  --service-rate-limit-burst 1000000)

api() {  # api METHOD PATH [BODY [HEADER]] → body on stdout; status in $work/status
  curl -s -o "$work/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $service_token" \
    -H 'Content-Type: application/json' ${4:+-H "$4"} ${3:+--data "$3"} "$base$2" >"$work/status"
  cat "$work/body"
}

# all_pages PATH FIELD: every FIELD value of every page of a list route, one per line.
all_pages() {
  local path=$1 field=$2 cursor="" page
  for _ in $(seq 1 1000); do
    page=$(api GET "$path&limit=500${cursor:+&cursor=$cursor}")
    [ "$(cat "$work/status")" = 200 ] || { echo "GET $path: $(cat "$work/status")" >&2; return 1; }
    echo "$page" | grep -o "\"$field\":\"[^\"]*\"" | cut -d'"' -f4
    cursor=$(echo "$page" | sed -n 's/.*"nextCursor":"\([^"]*\)".*/\1/p')
    [ -z "$cursor" ] && return 0
  done
}

debit_body='{"amountUsd":"0.01","type":"debit","description":"a command"}'
credit_body='{"amountUsd":"0.05","type":"bonus","description":"a gift"}'

# ---- the load, and the crash ----------------------------------------------------------
start_server first "${serve_flags[@]}"
user=$(api POST /v1/users/resolve '{"platform":"telegram","platformUserId":"crash-test"}' |
  sed -n 's/.*"masterAccountId":"\([0-9a-f]\{24\}\)".*/\1/p')
[ -n "$user" ] || { fail "no masterAccountId in the resolve reply"; exit 1; }
api POST "/v1/users/$user/credits" '{"amountUsd":"100","type":"deposit","description":"opening"}' \
  >/dev/null
check "the opening credit is accepted" [ "$(cat "$work/status")" = 201 ]

# money_load N: debits (and every fifth request a credit) with keys crash-N-I until the
# server goes away. Lines "KEY KIND STATUS TRANSACTION_ID" → money.N; the request in
# flight at the crash (no reply) is "KEY KIND 000 -".
money_load() {
  local n=$1 i=0 kind body reply status id
  : >"$work/money.$n"
  while true; do
    i=$((i + 1))
    if [ $((i % 5)) -eq 0 ]; then kind=credits body=$credit_body; else kind=debits body=$debit_body; fi
    reply=$(curl -s --max-time 10 -w ' %{http_code}' -X POST \
      -H "Authorization: Bearer $service_token" -H 'Content-Type: application/json' \
      -H "Idempotency-Key: crash-$n-$i" --data "$body" "$base/v1/users/$user/$kind")
    status=${reply##* }
    id=$(echo "$reply" | sed -n 's/.*"transactionId":"\([0-9a-f]\{24\}\)".*/\1/p')
    echo "crash-$n-$i $kind $status ${id:--}" >>"$work/money.$n"
    [ "$status" = 000 ] && break
  done
}
event='{"masterAccountId":"'$user'","eventType":"menu_item_clicked","sourcePlatform":"telegram","eventData":{"menuName":"main","itemId":"x","actionType":"open"}}'
for n in 1 2 3; do
  money_load "$n" &
  loader_pids+=($!)
done
for n in 1 2; do
  event_load "$n" events &
  loader_pids+=($!)
done
for _ in $(seq 1 300); do
  [ "$(cat "$work"/money.* 2>/dev/null | grep -c ' 201 ')" -ge 150 ] &&
    [ "$(cat "$work"/events.* 2>/dev/null | wc -l)" -ge 50 ] && break
  sleep 0.1
done
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=""
for pid in "${loader_pids[@]}"; do wait "$pid" 2>/dev/null; done
loader_pids=()

cat "$work"/money.* >"$work/money"
awk '$3 == 201 {print $4}' "$work/money" | sort -u >"$work/acked_money"
acked_money=$(wc -l <"$work/acked_money")
check "money moves were acknowledged before the crash ($acked_money)" [ "$acked_money" -ge 150 ]
unexpected=$(awk '$3 != 201 && $3 != "000"' "$work/money" | wc -l)
check "no request was refused before the crash" [ "$unexpected" -eq 0 ]
sort -u "$work"/events.* >"$work/acked_events"
acked_events=$(wc -l <"$work/acked_events")
check "events were acknowledged before the crash ($acked_events)" [ "$acked_events" -ge 50 ]

# ---- the store as the crash left it ---------------------------------------------------
"$noema" ledger verify --store "$store" >"$work/verify.out" 2>&1
check "ledger verify passes on the crashed store" [ $? -eq 0 ]
check "and it checked the user's records" grep -q "ledger ok" "$work/verify.out"

# ---- restart: everything acknowledged is there ----------------------------------------
start_server second "${serve_flags[@]}"
all_pages "/v1/users/$user/transactions?type=debit" transactionId >"$work/stored_money" &&
  all_pages "/v1/users/$user/transactions?type=bonus" transactionId >>"$work/stored_money" ||
  fail "listing the ledger"
sort -u -o "$work/stored_money" "$work/stored_money"
missing=$(comm -23 "$work/acked_money" "$work/stored_money" | wc -l)
check "every acknowledged money move is in the ledger ($acked_money acked, $(wc -l <"$work/stored_money") stored)" \
  [ "$missing" -eq 0 ]
all_pages "/v1/events?masterAccountId=$user&eventType=menu_item_clicked" eventId \
  >"$work/stored_events" || fail "listing the events"
sort -u -o "$work/stored_events" "$work/stored_events"
missing=$(comm -23 "$work/acked_events" "$work/stored_events" | wc -l)
check "every acknowledged event is stored ($acked_events acked, $(wc -l <"$work/stored_events") stored)" \
  [ "$missing" -eq 0 ]

# ---- retries of the unanswered requests move money at most once -----------------------
retried=0
while read -r key kind _ _; do
  if [ "$kind" = credits ]; then body=$credit_body; else body=$debit_body; fi
  for attempt in 1 2; do
    api POST "/v1/users/$user/$kind" "$body" "Idempotency-Key: $key" >"$work/retry.$attempt"
    check "the retry of $key (attempt $attempt) is 201" [ "$(cat "$work/status")" = 201 ]
  done
  check "a second retry of $key returns the first retry's reply" cmp -s "$work/retry.1" "$work/retry.2"
  retried=$((retried + 1))
done < <(awk '$3 == "000"' "$work/money")
check "each loader had one request unanswered ($retried)" [ "$retried" -eq 3 ]

# Money moved: every key that got a 201, once. Count the ledger by type.
debits=$(all_pages "/v1/users/$user/transactions?type=debit" transactionId | wc -l)
credits=$(all_pages "/v1/users/$user/transactions?type=bonus" transactionId | wc -l)
keys_debited=$(awk '$2 == "debits"' "$work/money" | wc -l)
keys_credited=$(awk '$2 == "credits"' "$work/money" | wc -l)
check "one debit per key ($debits records, $keys_debited keys)" [ "$debits" -eq "$keys_debited" ]
check "one credit per key ($credits records, $keys_credited keys)" [ "$credits" -eq "$keys_credited" ]
expected=$(awk -v d="$debits" -v c="$credits" 'BEGIN { printf "%d.%02d", (10000 - d + 5 * c) / 100, (10000 - d + 5 * c) % 100 }')
balance=$(api GET "/v1/users/$user/economy" | sed -n 's/.*"usdCredit":"\([^"]*\)".*/\1/p')
check "the balance is the opening credit plus the ledger ($balance, expected $expected)" \
  [ "$balance" = "$expected" ]

stop_server second
"$noema" ledger verify --store "$store" >"$work/verify2.out" 2>&1
check "ledger verify passes after the retries" [ $? -eq 0 ]

finish
