#!/usr/bin/env bash
# CLI behaviour of `noema export`, `import`, `migrate`, `backup` and `restore`, run
# against the built binary as an operator would. The export files are also read by an
# independent Extended JSON reader (Debian's python3-bson, tests/cli/portability_check.py).
# usage: portability_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
project=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

expect() {  # expect NAME EXPECTED_EXIT ACTUAL_EXIT
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: expected exit $2, got $3"; cat "$work/out" 2>/dev/null
    failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}
expect_output() {  # expect_output NAME FILE PATTERN
  if grep -q -- "$3" "$2"; then echo "ok: $1"; else
    echo "FAIL: $1: output lacks '$3':"; cat "$2"; failures=$((failures + 1)); fi
}
same_dirs() {  # same_dirs NAME DIR_A DIR_B
  if diff -r "$2" "$3" >"$work/diff"; then echo "ok: $1"; else
    echo "FAIL: $1:"; head -20 "$work/diff"; failures=$((failures + 1)); fi
}

for verb in export import migrate backup restore; do
  "$noema" $verb --help >"$work/out" 2>&1; expect "$verb --help" 0 $?
done

# Files as mongoexport writes them: compact, relaxed (userCore, userEconomy: int64 as plain
# numbers, ISO dates) and canonical (transactions).
A=65f1a2b3c4d5e6f708192a3b
B=65f1a2b3c4d5e6f708192a3c
mkdir -p "$work/mongoexport"
cat >"$work/mongoexport/userCore.json" <<JSON
{"_id":{"\$oid":"$A"},"platformIdentities":{"test":"a"},"identityKeys":["test:a"],"userCreationTimestamp":{"\$date":"2025-05-07T12:00:00.123Z"},"updatedAt":{"\$date":"2025-05-07T12:00:00Z"},"status":"active"}
{"_id":{"\$oid":"$B"},"platformIdentities":{"test":"b"},"identityKeys":["test:b"],"userCreationTimestamp":{"\$date":"2025-05-07T12:00:00Z"},"updatedAt":{"\$date":"2025-05-07T12:00:00Z"},"status":"active"}
JSON
cat >"$work/mongoexport/userEconomy.json" <<JSON
{"_id":{"\$oid":"$A"},"masterAccountId":{"\$oid":"$A"},"usdCredit":{"\$numberDecimal":"10.50"},"usdHeld":{"\$numberDecimal":"0"},"exp":5000000000,"ledgerSequence":2,"createdAt":{"\$date":"2025-05-07T12:00:00.123Z"},"updatedAt":{"\$date":"2025-05-07T12:00:00Z"}}
{"_id":{"\$oid":"$B"},"masterAccountId":{"\$oid":"$B"},"usdCredit":{"\$numberDecimal":"0.00"},"usdHeld":{"\$numberDecimal":"0"},"exp":7,"ledgerSequence":0,"createdAt":{"\$date":"2025-05-07T12:00:00Z"},"updatedAt":{"\$date":"2025-05-07T12:00:00Z"}}
JSON
cat >"$work/mongoexport/transactions.json" <<JSON
{"_id":{"\$oid":"65f1a2b3c4d5e6f708192b01"},"masterAccountId":{"\$oid":"$A"},"timestamp":{"\$date":{"\$numberLong":"1746619201000"}},"type":"deposit","description":"first","sequence":{"\$numberLong":"1"},"amountUsd":{"\$numberDecimal":"12.00"},"balanceBeforeUsd":{"\$numberDecimal":"0"},"balanceAfterUsd":{"\$numberDecimal":"12.00"}}
{"_id":{"\$oid":"65f1a2b3c4d5e6f708192b02"},"masterAccountId":{"\$oid":"$A"},"timestamp":{"\$date":{"\$numberLong":"1746619202000"}},"type":"debit","description":"second","sequence":{"\$numberLong":"2"},"amountUsd":{"\$numberDecimal":"-1.50"},"balanceBeforeUsd":{"\$numberDecimal":"12.00"},"balanceAfterUsd":{"\$numberDecimal":"10.50"}}
JSON

s1="sqlite:$work/s1/noema.db"
"$noema" import "$work/mongoexport" --store "$s1" >"$work/out" 2>&1
expect "import of mongoexport files" 0 $?
expect_output "import prints the audit verdict" "$work/out" "ledger audit: checked 2 users, 2 transactions: ledger ok"
expect_output "import counts what it inserted" "$work/out" "userEconomy.json: read 2, inserted 2"

"$noema" export --store "$s1" --out "$work/canonical" >"$work/out" 2>&1
expect "export (canonical)" 0 $?
expect_output "export counts documents" "$work/out" "exported 6 documents"
"$noema" export --store "$s1" --out "$work/relaxed" --format relaxed >"$work/out" 2>&1
expect "export --format relaxed" 0 $?
expect_output "relaxed keeps Decimal128" "$work/relaxed/userEconomy.json" '"$numberDecimal" : "10.50"'
expect_output "relaxed writes ISO dates" "$work/relaxed/userEconomy.json" '"$date" : "2025-05-07T12:00:00.123Z"'
expect_output "relaxed writes int64 as a number" "$work/relaxed/userEconomy.json" '"exp" : 5000000000'
expect_output "canonical keeps int64 typed" "$work/canonical/userEconomy.json" '"exp" : { "$numberLong" : "7" }'

/usr/bin/python3 "$project/tests/cli/portability_check.py" "$work/canonical" "$work/relaxed" \
  "$work/python" >"$work/out" 2>&1
expect "bson.json_util reads the files to the same values" 0 $?

# Round trips: noema's own files, and the files bson.json_util wrote.
# (The relaxed form is compared with itself: like mongoexport's, it writes an int64 the
# schema does not type, such as transactions.sequence, as a plain number that reads back
# as an int32.)
for source in canonical relaxed python; do
  format=canonical; [ "$source" = relaxed ] && format=relaxed
  "$noema" import "$work/$source" --store "sqlite:$work/rt-$source/noema.db" >"$work/out" 2>&1
  expect "import of the $source files" 0 $?
  "$noema" export --store "sqlite:$work/rt-$source/noema.db" --out "$work/rt-$source-out" \
    --format $format >"$work/out" 2>&1
  expect "export after importing the $source files" 0 $?
  same_dirs "export -> import ($source) -> export gives identical files" "$work/$format" \
    "$work/rt-$source-out"
done

# Bad lines: each reported with file, line and reason; the rest imported; exit 1.
mkdir -p "$work/bad"
{ head -1 "$work/canonical/userCore.json"; echo '{"_id": '; echo '{"_id":{"$oid":"65f1a2b3c4d5e6f708192a3d"}}';
  head -1 "$work/canonical/userCore.json"; tail -1 "$work/canonical/userCore.json"; } >"$work/bad/userCore.json"
"$noema" import "$work/bad" --store "sqlite:$work/bad-store/noema.db" >"$work/out" 2>&1
expect "import with bad lines exits 1" 1 $?
expect_output "malformed line reported" "$work/out" "bad/userCore.json:2: rejected: .*malformed JSON"
expect_output "schema violation reported" "$work/out" "bad/userCore.json:3: rejected: "
expect_output "duplicate reported" "$work/out" "bad/userCore.json:4: rejected: .*"
expect_output "the good lines are imported" "$work/out" "read 5, inserted 2, replaced 0, unchanged 0, rejected 3"
"$noema" import "$work/canonical" --store "sqlite:$work/bad-store/noema.db" --mode upsert >"$work/out" 2>&1
expect "upsert re-run completes the import" 0 $?
expect_output "upsert leaves the identical documents alone" "$work/out" "userCore.json: read 2, inserted 0, replaced 0, unchanged 2"
"$noema" import "$work/nowhere" --store "sqlite:$work/bad-store/noema.db" >"$work/out" 2>&1
expect "import of a missing directory exits 2" 2 $?
"$noema" import "$work/canonical" --mode sideways >"$work/out" 2>&1
expect "unknown --mode exits 2" 2 $?
"$noema" export --store "$s1" --collections userCore,nope --out "$work/x" >"$work/out" 2>&1
expect "unknown collection exits 2" 2 $?
expect_output "unknown collection is named" "$work/out" "unknown collection 'nope'"

# Migrate, and refuse a non-empty target.
"$noema" migrate --from "$s1" --to "sqlite:$work/m/noema.db" >"$work/out" 2>&1
expect "migrate into an empty store" 0 $?
expect_output "migrate verifies counts" "$work/out" "counts match"
expect_output "migrate audits the target" "$work/out" "ledger ok"
"$noema" migrate --from "$s1" --to "sqlite:$work/m/noema.db" >"$work/out" 2>&1
expect "migrate refuses a non-empty target" 1 $?
expect_output "refusal says why" "$work/out" "not empty"
"$noema" migrate --from "$s1" --to "sqlite:$work/m/noema.db" --allow-non-empty >"$work/out" 2>&1
expect "migrate --allow-non-empty" 0 $?
"$noema" migrate --from "sqlite:$work/none.db" --to "sqlite:$work/m2/noema.db" >"$work/out" 2>&1
expect "migrate from a missing store exits 2" 2 $?

# A --store typo never becomes a new store: reading verbs exit 2 naming the path, and an
# import from a directory that is not there creates nothing.
for verb in "ledger verify" "users show telegram:1" "sessions sweep" "generations sweep" \
  "report" "analytics rebuild"; do
  # shellcheck disable=SC2086
  "$noema" $verb --store "sqlite:$work/typo/noema.db" >"$work/out" 2>&1
  expect "$verb on a store that is not there exits 2" 2 $?
  expect_output "$verb names the path" "$work/out" "no store at '$work/typo/noema.db'"
done
"$noema" import "$work/no-such-dir" --store "sqlite:$work/typo/noema.db" >"$work/out" 2>&1
expect "import from a missing directory exits 2" 2 $?
if [ -e "$work/typo" ]; then echo "FAIL: a store was created"; failures=$((failures + 1)); else
  echo "ok: no store was created"; fi
# Nor from a directory without a <collection>.json file (it was created, then refused).
mkdir -p "$work/empty-dir" && touch "$work/empty-dir/notes.txt"
"$noema" import "$work/empty-dir" --store "sqlite:$work/typo/noema.db" >"$work/out" 2>&1
expect "import from a directory without collection files exits 2" 2 $?
expect_output "it says what is missing" "$work/out" "no <collection>.json file"
if [ -e "$work/typo" ]; then echo "FAIL: a store was created"; failures=$((failures + 1)); else
  echo "ok: no store was created for an empty directory"; fi

# Backup and restore.
"$noema" backup --store "$s1" --out "$work/backup.db" >"$work/out" 2>&1
expect "backup" 0 $?
"$noema" backup --store "$s1" --out "$work/backup.db" >"$work/out" 2>&1
expect "backup never overwrites" 2 $?
"$noema" restore "$work/backup.db" --store "sqlite:$work/restored/noema.db" >"$work/out" 2>&1
expect "restore into a new store" 0 $?
"$noema" ledger verify --store "sqlite:$work/restored/noema.db" >"$work/out" 2>&1
expect "the restored ledger verifies" 0 $?
"$noema" restore "$work/backup.db" --store "sqlite:$work/restored/noema.db" >"$work/out" 2>&1
expect "restore refuses an existing store" 1 $?
"$noema" restore "$work/backup.db" --store "sqlite:$work/restored/noema.db" --force >"$work/out" 2>&1
expect "restore --force" 0 $?
# Not while a server has the store open: it would lose what it acknowledged after the backup.
NOEMA_ADMIN_TOKEN=restore-test-admin-token-0123 "$noema" serve \
  --store "sqlite:$work/restored/noema.db" --listen 127.0.0.1:0 --quiet >/dev/null 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q "serving on" "$work/serve.err" && break; sleep 0.1; done
"$noema" restore "$work/backup.db" --store "sqlite:$work/restored/noema.db" --force >"$work/out" 2>&1
expect "restore refuses a store a running server has open" 1 $?
expect_output "and says so" "$work/out" "open in another process"
kill -TERM "$serve_pid"
wait "$serve_pid"
"$noema" restore "$work/backup.db" --store "sqlite:$work/restored/noema.db" --force >"$work/out" 2>&1
expect "restore once the server has stopped" 0 $?
echo "not a database" >"$work/junk.db"
"$noema" restore "$work/junk.db" --store "sqlite:$work/r2/noema.db" >"$work/out" 2>&1
expect "restore of a non-database exits 1" 1 $?
"$noema" backup --store "mongodb://127.0.0.1:1/noema" --out "$work/m.db" >"$work/out" 2>&1
expect "backup of MongoDB points at mongodump" 2 $?
expect_output "the message names mongodump" "$work/out" "mongodump"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
