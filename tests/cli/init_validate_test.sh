#!/usr/bin/env bash
# CLI behaviour of `noema init`, `noema validate`, --version, --help and usage errors,
# run against the built binary as an operator would.
# usage: init_validate_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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

"$noema" --version >"$work/out" 2>&1; expect "--version" 0 $?
expect_output "--version prints the version" "$work/out" "^noema [0-9]"
for verb in init validate; do
  "$noema" $verb --help >"$work/out" 2>&1; expect "$verb --help" 0 $?
done

"$noema" init --bogus >"$work/out" 2>&1; expect "bad flag exits 2" 2 $?
[ "$(wc -l <"$work/out")" -eq 1 ] && echo "ok: bad flag gives one line" ||
  { echo "FAIL: bad flag output is not one line"; cat "$work/out"; failures=$((failures + 1)); }
"$noema" >"$work/out" 2>&1; expect "no verb exits 2" 2 $?
expect_output "no verb says a verb is required" "$work/out" "A subcommand is required"
"$noema" frobnicate >"$work/out" 2>&1; expect "unknown verb exits 2" 2 $?
expect_output "an unknown verb is named" "$work/out" "^noema: unknown verb 'frobnicate' (run 'noema --help')"
"$noema" ledger audit >"$work/out" 2>&1; expect "unknown sub-verb exits 2" 2 $?
expect_output "an unknown sub-verb is named" "$work/out" "^noema: unknown verb 'audit' (run 'noema ledger --help')"
"$noema" init --store "postgres://x" >"$work/out" 2>&1; expect "unknown store scheme exits 2" 2 $?

store="sqlite:$work/data/noema.db"
"$noema" init --store "$store" >"$work/out" 2>&1; expect "init creates the store" 0 $?
expect_output "init reports what it created" "$work/out" "created"
[ -f "$work/data/noema.db" ] && echo "ok: database file exists" ||
  { echo "FAIL: no database file"; failures=$((failures + 1)); }
"$noema" init --store "$store" >"$work/out2" 2>&1; expect "init again" 0 $?
if grep -q "created" "$work/out2"; then
  echo "FAIL: second init created something"; cat "$work/out2"; failures=$((failures + 1))
else echo "ok: second init is a no-op"; fi

cat >"$work/good.json" <<'JSON'
{"_id": {"$oid": "507f1f77bcf86cd799439011"}, "platformIdentities": {"telegram": "12345"}, "userCreationTimestamp": {"$date": "2025-05-07T12:00:00Z"}, "updatedAt": {"$date": "2025-05-07T12:00:00Z"}, "wallets": [{"address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "addedAt": {"$date": "2025-05-07T12:00:00Z"}, "verified": false}]}
JSON
cat >"$work/bad.json" <<'JSON'
{"_id": {"$oid": "507f1f77bcf86cd799439011"}, "platformIdentities": {"telegram": "12345"}, "userCreationTimestamp": {"$date": "2025-05-07T12:00:00Z"}, "updatedAt": {"$date": "2025-05-07T12:00:00Z"}}

{"_id": {"$oid": "507f1f77bcf86cd799439012"}, "platformIdentities": {"telegram": "1"}, "userCreationTimestamp": {"$date": "2025-05-07T12:00:00Z"}, "updatedAt": {"$date": "2025-05-07T12:00:00Z"}, "wallets": [{"address": 42, "addedAt": {"$date": "2025-05-07T12:00:00Z"}, "verified": false}]}
this is not json
JSON
"$noema" validate userCore "$work/good.json" >"$work/out" 2>&1; expect "valid userCore accepted" 0 $?
"$noema" validate userCore "$work/bad.json" >"$work/out" 2>&1; expect "invalid userCore rejected" 1 $?
expect_output "error names wallets.0.address on line 3" "$work/out" "bad.json:3: wallets.0.address"
expect_output "malformed line reported on line 4" "$work/out" "bad.json:4:"
if grep -q "bad.json:1:" "$work/out"; then
  echo "FAIL: the valid line 1 was reported"; failures=$((failures + 1)); else echo "ok: valid line not reported"; fi
printf '[\n%s\n]\n' "$(cat "$work/good.json")" | "$noema" validate userCore - >"$work/out" 2>&1
expect "JSON array on stdin" 0 $?
# Two documents on one line: the line is refused, not read as its first document.
printf '%s%s\n' "$(cat "$work/good.json")" "$(cat "$work/good.json")" >"$work/two.json"
"$noema" validate userCore "$work/two.json" >"$work/out" 2>&1; expect "two documents on a line rejected" 1 $?
expect_output "and named" "$work/out" "two.json:1: malformed JSON: more than one JSON value"
mkdir -p "$work/adir"
"$noema" validate userCore "$work/adir" >"$work/out" 2>&1; expect "a directory exits 2" 2 $?
expect_output "and is named" "$work/out" "is a directory"
echo "not a database" >"$work/garbage.db"
"$noema" init --store "sqlite:$work/garbage.db" >"$work/out" 2>&1; expect "a store that is not a database exits 1" 1 $?
expect_output "and the file is named" "$work/out" "'$work/garbage.db': file is not a database"
"$noema" validate nosuch "$work/good.json" >"$work/out" 2>&1; expect "unknown collection exits 2" 2 $?
"$noema" validate userCore "$work/missing.json" >"$work/out" 2>&1; expect "unreadable file exits 2" 2 $?
[ "$(wc -l <"$work/out")" -eq 1 ] && echo "ok: unreadable file gives one line" ||
  { echo "FAIL: unreadable file output is not one line"; failures=$((failures + 1)); }

[ $failures -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
