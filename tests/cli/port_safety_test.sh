#!/usr/bin/env bash
# What `noema restore`, `backup`, `validate`, `export` and `init` refuse or keep safe, run
# against the built binary as an operator would (docs/operations.md, docs/storage.md).
# usage: port_safety_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
work=$(mktemp -d)
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; fi
  chmod -R u+w "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
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
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then echo "ok: $name"; else echo "FAIL: $name"; failures=$((failures + 1)); fi
}

# A store with one user (through the import of a user and its economy).
A=65f1a2b3c4d5e6f708192a3b
mkdir -p "$work/in"
cat >"$work/in/userCore.json" <<JSON
{"_id":{"\$oid":"$A"},"platformIdentities":{"test":"a"},"identityKeys":["test:a"],"userCreationTimestamp":{"\$date":"2025-05-07T12:00:00Z"},"updatedAt":{"\$date":"2025-05-07T12:00:00Z"},"status":"active"}
JSON
s="$work/s/s.db"
"$noema" import "$work/in" --store "sqlite:$s" >"$work/out" 2>&1
expect "a store to work on" 0 $?
"$noema" backup --store "sqlite:$s" --out "$work/bk.db" >"$work/out" 2>&1
expect "backup" 0 $?

# 1. A restore through a symlink to the store, or to its directory, is refused while a
# server has the store open by its real name.
ln -s "$s" "$work/link.db"
ln -s "$work/s" "$work/linkdir"
NOEMA_ADMIN_TOKEN=port-safety-test-admin-token-01 "$noema" serve \
  --store "sqlite:$s" --listen 127.0.0.1:0 --quiet >/dev/null 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q "serving on" "$work/serve.err" && break; sleep 0.1; done
for name in "$work/link.db" "$work/linkdir/s.db"; do
  "$noema" restore "$work/bk.db" --store "sqlite:$name" --force >"$work/out" 2>&1
  expect "restore through $name while serving is refused" 1 $?
  expect_output "and says why" "$work/out" "open in another process"
done
kill -TERM "$serve_pid"; wait "$serve_pid"; serve_pid=
check "the symlink is still a symlink" test -L "$work/link.db"
"$noema" restore "$work/bk.db" --store "sqlite:$work/link.db" --force >"$work/out" 2>&1
expect "restore through the symlink once the server has stopped" 0 $?
check "it replaced the file, not the symlink" test -L "$work/link.db"

# 3. restore --force replaces a damaged store: random bytes, or a zeroed header.
head -c 65536 /dev/urandom >"$work/c.db"
"$noema" restore "$work/bk.db" --store "sqlite:$work/c.db" --force >"$work/out" 2>&1
expect "restore --force over random bytes" 0 $?
"$noema" ledger verify --store "sqlite:$work/c.db" >"$work/out" 2>&1
expect "the restored store verifies" 0 $?
cp "$work/bk.db" "$work/z.db"
dd if=/dev/zero of="$work/z.db" bs=100 count=1 conv=notrunc 2>/dev/null
"$noema" restore "$work/bk.db" --store "sqlite:$work/z.db" --force >"$work/out" 2>&1
expect "restore --force over a zeroed header" 0 $?
"$noema" restore "$work/bk.db" --store "sqlite:$work/z.db" >"$work/out" 2>&1
expect "restore without --force still refuses an existing store" 1 $?

# 4. A backup is one file, readable from read-only media, and nothing is written beside it.
# (Run as root, chmod does not stop writes: then the check that nothing appears beside the
# backup — no -wal, -shm or -journal — is what proves a restore needs no write there.)
mkdir -p "$work/ro"
"$noema" backup --store "sqlite:$s" --out "$work/ro/bk.db" >"$work/out" 2>&1
expect "backup into a directory" 0 $?
chmod a-w "$work/ro"
"$noema" restore "$work/ro/bk.db" --store "sqlite:$work/from-ro/s.db" >"$work/out" 2>&1
expect "restore from a read-only directory" 0 $?
check "nothing beside the backup" test "$(ls -A "$work/ro")" = "bk.db"
chmod u+w "$work/ro"

# 6. validate refuses what import refuses, naming the empty key's path.
cat >"$work/events.json" <<JSON
{"_id":{"\$oid":"65f1a2b3c4d5e6f708192d01"},"eventId":{"\$oid":"65f1a2b3c4d5e6f708192d01"},"masterAccountId":{"\$oid":"$A"},"sessionId":{"\$oid":"65f1a2b3c4d5e6f708192c01"},"timestamp":{"\$date":"2025-05-07T12:00:00Z"},"eventType":"command_executed","sourcePlatform":"test","eventData":{"":1}}
{"_id":{"\$oid":"65f1a2b3c4d5e6f708192d02"},"eventId":{"\$oid":"65f1a2b3c4d5e6f708192d02"},"masterAccountId":{"\$oid":"$A"},"sessionId":{"\$oid":"65f1a2b3c4d5e6f708192c01"},"timestamp":{"\$date":"1969-12-31T23:59:59Z"},"eventType":"command_executed","sourcePlatform":"test","eventData":{}}
JSON
"$noema" validate userEvents "$work/events.json" >"$work/out" 2>&1
expect "validate refuses an empty key and an event before 1970" 1 $?
expect_output "the empty key's path is named" "$work/out" "events.json:1: eventData.<empty>: "
expect_output "the date before 1970 is named" "$work/out" "events.json:2: timestamp: "

# 8. A collection listed twice is refused.
"$noema" export --store "sqlite:$s" --collections userCore,userCore --out "$work/twice" >"$work/out" 2>&1
expect "export of a collection listed twice exits 2" 2 $?
expect_output "naming it" "$work/out" "collection 'userCore' is listed twice"
check "nothing exported" test ! -e "$work/twice"

# 9. init on another program's SQLite database is refused and changes nothing.
/usr/bin/python3 -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE notes (t TEXT)'); c.commit()" "$work/other.db"
cp "$work/other.db" "$work/other.before"
"$noema" init --store "sqlite:$work/other.db" >"$work/out" 2>&1
expect "init on another program's database exits 1" 1 $?
expect_output "and says it is not a noema store" "$work/out" "not a noema store"
check "the database is unchanged" cmp -s "$work/other.db" "$work/other.before"
check "no lock, -wal or -shm beside it" test ! -e "$work/other.db.lock" -a ! -e "$work/other.db-wal"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
