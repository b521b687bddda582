#!/usr/bin/env bash
# `noema import-legacy` run as an operator would: usage errors, --dry-run, --report, a
# second run that changes nothing, the ledger audit, and a migrated legacy ms2_ key that
# authenticates against `noema serve`.
# usage: import_legacy_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
project=$2
fixtures="$project/tests/fixtures/legacy"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
failures=0

expect() {  # expect NAME EXPECTED_EXIT ACTUAL_EXIT
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: expected exit $2, got $3"
    failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}
expect_output() {  # expect_output NAME FILE PATTERN
  if grep -q -- "$3" "$2"; then echo "ok: $1"; else
    echo "FAIL: $1: output lacks '$3':"; cat "$2"; failures=$((failures + 1)); fi
}
store="sqlite:$work/data/noema.db"

"$noema" import-legacy --help >"$work/out" 2>&1; expect "import-legacy --help" 0 $?
expect_output "help names the rate flag" "$work/out" "--qoints-per-usd"

"$noema" import-legacy "$fixtures" --store "$store" >"$work/out" 2>&1
expect "missing --qoints-per-usd exits 2" 2 $?
expect_output "the missing flag is named" "$work/out" "qoints-per-usd"
"$noema" import-legacy "$work/no-such-dir" --store "$store" --qoints-per-usd 1000 >"$work/out" 2>&1
expect "missing directory exits 2" 2 $?
expect_output "the missing directory is named" "$work/out" "no-such-dir"
"$noema" import-legacy "$fixtures" --store "$store" --qoints-per-usd abc >"$work/out" 2>&1
expect "a bad rate exits 2" 2 $?
"$noema" import-legacy "$fixtures" --store "$store" --qoints-per-usd 0 >"$work/out" 2>&1
expect "a zero rate exits 2" 2 $?
mkdir -p "$work/not-legacy"
"$noema" import-legacy "$work/not-legacy" --store "$store" --qoints-per-usd 1000 >"$work/out" 2>&1
expect "a directory with none of the legacy files exits 2" 2 $?
expect_output "and says which files it looked for" "$work/out" "holds none of the legacy files"
"$noema" import-legacy "$fixtures" --store "$store" --qoints-per-usd 1000 \
  --report "$work/no-such-dir/r.json" >"$work/out" 2>&1
expect "a report nowhere writable exits 2 before importing" 2 $?
if [ -e "$work/data" ]; then echo "FAIL: the usage errors created a store"; failures=$((failures + 1))
else echo "ok: no usage error created a store"; fi

# --dry-run: the report, and nothing written (on an initialised, empty store).
"$noema" init --store "$store" >"$work/out" 2>&1; expect "init" 0 $?
"$noema" import-legacy "$fixtures" --store "$store" --qoints-per-usd 2500 --dry-run \
  --report "$work/dry.json" >"$work/dry.out" 2>"$work/dry.err"
expect "dry run exits 1 (the fixtures have skips)" 1 $?
expect_output "dry run says so" "$work/dry.out" "dry run: nothing written"
expect_output "dry run reports the malformed history line" "$work/dry.out" "history.json:18: malformed"
[ ! -s "$work/dry.err" ] && echo "ok: no progress bar when stderr is not a terminal" ||
  { echo "FAIL: stderr not empty"; cat "$work/dry.err"; failures=$((failures + 1)); }
"$noema" users show telegram:1001 --store "$store" >"$work/out" 2>&1
[ $? -ne 0 ] && echo "ok: dry run created no user" ||
  { echo "FAIL: dry run wrote a user"; failures=$((failures + 1)); }

# The import, with a JSON report.
"$noema" import-legacy "$fixtures" --store "$store" --qoints-per-usd 2500 \
  --report "$work/report.json" >"$work/run.out" 2>&1
expect "import exits 1 (skips reported)" 1 $?
expect_output "table header" "$work/run.out" "collection  *read  *imported"
expect_output "users_core row" "$work/run.out" "^users_core  *5  *3 "
expect_output "skip of users_core line 3" "$work/run.out" "users_core.json:3: malformed"
"$noema" users show telegram:1001 --store "$store" >"$work/show.out" 2>&1
expect "users show of an imported user" 0 $?
expect_output "users show: the last login on a line of its own" "$work/show.out" "^lastLogin  *-$"
expect_output "users show: the last platform seen on another" "$work/show.out" "^lastSeenPlatform  *-$"
python3 - "$work/report.json" "$work/dry.json" <<'PY' && echo "ok: JSON reports agree" ||
import json, sys
real, dry = (json.load(open(p)) for p in sys.argv[1:3])
assert real["dryRun"] is False and dry["dryRun"] is True
assert real["collections"]["history"]["imported"] == 18, real["collections"]["history"]
for name, c in real["collections"].items():
    d = dry["collections"][name]
    assert c["read"] == d["read"] and c["skipped"] == d["skipped"], name
    assert c["imported"] + c["merged"] == d["imported"] + d["merged"], name
assert any(s["file"] == "history.json" and s["line"] == 18 for s in real["skips"])
PY
  { echo "FAIL: JSON reports"; failures=$((failures + 1)); }

"$noema" ledger verify --store "$store" >"$work/out" 2>&1; expect "ledger verify after import" 0 $?
expect_output "ledger ok" "$work/out" "ledger ok"

# Again: nothing changes.
"$noema" import-legacy "$fixtures" --store "$store" --qoints-per-usd 2500 \
  --report "$work/again.json" >"$work/again.out" 2>&1
python3 - "$work/again.json" <<'PY' && echo "ok: second import is a no-op" ||
import json, sys
r = json.load(open(sys.argv[1]))
for name, c in r["collections"].items():
    assert c["imported"] == 0 and c["merged"] == 0, (name, c)
assert r["eventsWritten"] == 0 and r["usersCreated"] == 0 and r["ledgerRecordsWritten"] == 0
PY
  { echo "FAIL: second import wrote"; cat "$work/again.out"; failures=$((failures + 1)); }

# The legacy key authenticates against the API.
"$noema" serve --store "$store" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's|.*serving on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$work/serve.err")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "FAIL: serve did not start"; cat "$work/serve.err"; failures=$((failures + 1))
else
  user=$("$noema" users show telegram:1001 --store "$store" 2>/dev/null |
    sed -n 's/^masterAccountId[: ]*\([0-9a-f]\{24\}\).*/\1/p' | head -1)
  code=$(curl -s -o "$work/body" -w '%{http_code}' \
    -H "Authorization: Bearer ms2_0123456789abcdef0123456789ABCDEF" \
    "http://127.0.0.1:$port/v1/users/$user/economy")
  [ "$code" = 200 ] && echo "ok: legacy ms2_ key authenticates (HTTP 200)" ||
    { echo "FAIL: legacy key: HTTP $code for user '$user'"; cat "$work/body"; failures=$((failures + 1)); }
  expect_output "its balance is the migrated one" "$work/body" '"1.00"'
  code=$(curl -s -o "$work/body" -w '%{http_code}' \
    -H "Authorization: Bearer ms2_0123456789abcdef0123456789ABCDEE" \
    "http://127.0.0.1:$port/v1/users/$user/economy")
  [ "$code" = 401 ] && echo "ok: a wrong ms2_ key is refused (HTTP 401)" ||
    { echo "FAIL: wrong key: HTTP $code"; failures=$((failures + 1)); }
  kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
fi

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all passed"
