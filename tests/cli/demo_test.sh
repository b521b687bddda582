#!/usr/bin/env bash
# `noema demo` and `noema serve --demo-if-empty` run as an operator would: flag limits
# (exit 2, nothing written), a demo into an empty store, refusal of a store that holds
# users (exit 1, nothing written) unless --force, no progress bar when stderr is not a
# terminal, and serve seeding only an empty store and printing the dashboard URL.
# usage: demo_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
unset NOEMA_STORE NOEMA_ADMIN_TOKEN NOEMA_LISTEN
failures=0
ok() { echo "ok: $1"; }
fail() {
  echo "FAIL: $1"
  failures=$((failures + 1))
}
expect_exit() {  # expect_exit CODE NAME COMMAND...
  local code=$1 name=$2
  shift 2
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" = "$code" ]; then ok "$name"; else
    fail "$name: exit $got, expected $code: $(cat "$work/err")"
  fi
}
users_in() {  # users_in DB: the userCore rows of a SQLite store
  sqlite3 "$1" "SELECT count(*) FROM userCore" 2>/dev/null || echo "?"
}

store="$work/a/noema.db"
mkdir -p "$work/a"
expect_exit 2 "--users 0 is refused" "$noema" demo --store "sqlite:$store" --users 0
expect_exit 2 "--users 100001 is refused" "$noema" demo --store "sqlite:$store" --users 100001
expect_exit 2 "--days 0 is refused" "$noema" demo --store "sqlite:$store" --days 0
expect_exit 2 "--days 366 is refused" "$noema" demo --store "sqlite:$store" --days 366
if [ -e "$store" ]; then fail "a refused demo created the store"; else ok "refused flags wrote nothing"; fi

expect_exit 0 "a demo into an empty store" "$noema" demo --store "sqlite:$store" --users 5 --days 3 --seed 9
grep -q '^demo: 5 users' "$work/out" && ok "the summary names the users" || fail "summary: $(cat "$work/out")"
[ -s "$work/err" ] && fail "stderr is not a terminal, yet: $(cat "$work/err")" || ok "no progress bar off a terminal"
before=$(users_in "$store")

expect_exit 1 "a store with users is refused" "$noema" demo --store "sqlite:$store" --users 5 --days 3
grep -q -- '--force' "$work/err" && ok "the refusal names --force" || fail "refusal: $(cat "$work/err")"
[ "$(users_in "$store")" = "$before" ] && ok "the refusal wrote nothing" || fail "users changed"
expect_exit 0 "--force adds to it" "$noema" demo --store "sqlite:$store" --users 5 --days 3 --force
[ "$(users_in "$store")" -gt "$before" ] && ok "--force added users" || fail "no users added"

# serve --demo-if-empty: seeds an empty store, prints the dashboard URL with the token.
start_server() {  # start_server NAME STORE
  "$noema" serve --store "sqlite:$2" --listen 127.0.0.1:0 --quiet --demo-if-empty \
    --demo-users 4 --demo-days 3 >"$work/$1.out" 2>"$work/$1.err" &
  server_pid=$!
  for _ in $(seq 1 300); do
    grep -q 'dashboard: http' "$work/$1.err" && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid"
  server_pid=""
}
mkdir -p "$work/b"
if start_server fresh "$work/b/noema.db"; then
  grep -q 'demo: 4 users' "$work/fresh.err" && ok "serve seeded the empty store" ||
    fail "no demo: $(cat "$work/fresh.err")"
  grep -Eq 'dashboard: http://127\.0\.0\.1:[0-9]+/dashboard#token=noema_admin_[0-9a-f]{64}$' \
    "$work/fresh.err" && ok "the first start prints the dashboard URL with the token" ||
    fail "URL: $(cat "$work/fresh.err")"
  # The dashboard's static files: no token, their Content-Type, a strict CSP; 404 else.
  base=$(sed -n 's|.*dashboard: \(http://127\.0\.0\.1:[0-9]*\)/dashboard.*|\1|p' "$work/fresh.err")
  for pair in "dashboard:text/html" "dashboard/dashboard.js:text/javascript" \
    "dashboard/dashboard.css:text/css" "dashboard/favicon.svg:image/svg+xml"; do
    path=${pair%%:*}
    type=${pair#*:}
    headers=$(curl -s -D - -o "$work/body" "$base/$path")
    if echo "$headers" | grep -qi "^content-type: $type" &&
      echo "$headers" | grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" &&
      echo "$headers" | head -1 | grep -q ' 200' && [ -s "$work/body" ]; then
      ok "/$path: 200 $type with the CSP, no token"
    else
      fail "/$path: $headers"
    fi
  done
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/dashboard/nope.js")
  [ "$code" = 404 ] && ok "an unknown dashboard file is 404" || fail "unknown file: $code"
  curl -s "$base/dashboard" | grep -q 'src="/dashboard/dashboard.js"' &&
    ok "the page loads its script from this server" || fail "page body"
  stop_server
else
  fail "serve did not start: $(cat "$work/fresh.err")"
fi
before=$(users_in "$work/b/noema.db")
if start_server again "$work/b/noema.db"; then
  grep -q 'no demo data added' "$work/again.err" && ok "a store with users is not seeded" ||
    fail "$(cat "$work/again.err")"
  grep -q '#token=' "$work/again.err" && fail "the token was printed again" ||
    ok "later starts print the URL without a token"
  stop_server
else
  fail "serve did not start again: $(cat "$work/again.err")"
fi
[ "$(users_in "$work/b/noema.db")" = "$before" ] && ok "users unchanged" || fail "users changed"

echo "$failures failure(s)"
[ "$failures" = 0 ]
