#!/usr/bin/env bash
# `noema users erase` (DECISIONS.md 18) as an operator runs it: refused without --yes
# (exit 2, naming the flag, nothing changed), then the erasure with --yes: the personal
# data is gone, the identity is free, the ledger still verifies. A second run is a success
# that removes nothing more; an unknown user is exit 2.
# usage: users_erase_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset NOEMA_STORE
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
    fail "$name: exit $got, expected $code: $(cat "$work/out" "$work/err")"
  fi
}
has() {  # has NAME FILE PATTERN
  if grep -q -- "$3" "$2"; then ok "$1"; else fail "$1: '$3' not in: $(cat "$2")"; fi
}
lacks() {  # lacks NAME FILE PATTERN
  if grep -q -- "$3" "$2"; then fail "$1: '$3' still in: $(cat "$2")"; else ok "$1"; fi
}

# A user with an identity, a profile, a wallet and a balance of 10.50 (two ledger records).
A=65f1a2b3c4d5e6f708192a3b
mkdir -p "$work/in"
cat >"$work/in/userCore.json" <<JSON
{"_id":{"\$oid":"$A"},"platformIdentities":{"telegram":"ada-1815"},"identityKeys":["telegram:ada-1815"],"wallets":[{"address":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","isPrimary":true,"verified":false,"addedAt":{"\$date":"2025-05-07T12:00:00Z"}}],"profile":{"displayName":"Ada Lovelace"},"lastSeenPlatform":"telegram","userCreationTimestamp":{"\$date":"2025-05-07T12:00:00Z"},"updatedAt":{"\$date":"2025-05-07T12:00:00Z"},"status":"active"}
JSON
cat >"$work/in/userEconomy.json" <<JSON
{"_id":{"\$oid":"$A"},"masterAccountId":{"\$oid":"$A"},"usdCredit":{"\$numberDecimal":"10.50"},"usdHeld":{"\$numberDecimal":"0"},"exp":{"\$numberLong":"7"},"ledgerSequence":{"\$numberLong":"2"},"createdAt":{"\$date":"2025-05-07T12:00:00Z"},"updatedAt":{"\$date":"2025-05-07T12:00:02Z"}}
JSON
cat >"$work/in/transactions.json" <<JSON
{"_id":{"\$oid":"65f1a2b3c4d5e6f708192b01"},"masterAccountId":{"\$oid":"$A"},"timestamp":{"\$date":{"\$numberLong":"1746619201000"}},"type":"deposit","description":"first","sequence":{"\$numberLong":"1"},"amountUsd":{"\$numberDecimal":"12.00"},"balanceBeforeUsd":{"\$numberDecimal":"0"},"balanceAfterUsd":{"\$numberDecimal":"12.00"}}
{"_id":{"\$oid":"65f1a2b3c4d5e6f708192b02"},"masterAccountId":{"\$oid":"$A"},"timestamp":{"\$date":{"\$numberLong":"1746619202000"}},"type":"debit","description":"second","sequence":{"\$numberLong":"2"},"amountUsd":{"\$numberDecimal":"-1.50"},"balanceBeforeUsd":{"\$numberDecimal":"12.00"},"balanceAfterUsd":{"\$numberDecimal":"10.50"}}
JSON
store="sqlite:$work/s/noema.db"
expect_exit 0 "the fixture imports" "$noema" import "$work/in" --store "$store"

expect_exit 0 "users erase --help" "$noema" users erase --help
"$noema" users show "$A" --store "$store" >"$work/before" 2>&1

# Without --yes: refused, the flag named, nothing changed.
expect_exit 2 "erase without --yes is refused" "$noema" users erase "$A" --store "$store"
has "the refusal names --yes" "$work/err" "--yes"
"$noema" users show "$A" --store "$store" >"$work/after-refusal" 2>&1
if cmp -s "$work/before" "$work/after-refusal"; then ok "the refusal changed nothing"; else
  fail "the refusal changed the user: $(diff "$work/before" "$work/after-refusal")"
fi
has "the user still has its profile" "$work/after-refusal" "Ada Lovelace"

# With --yes: erased; the summary says what was removed and what is kept.
expect_exit 0 "erase --yes" "$noema" users erase "$A" --store "$store" --yes
cp "$work/out" "$work/summary"
has "the summary names the user" "$work/summary" "^erased  *$A"
has "the summary counts the identity" "$work/summary" "^identities  *1 removed"
has "the summary counts the wallet" "$work/summary" "^wallets  *1 removed"
has "the summary reports the ledger kept" "$work/summary" "^transactions  *2 kept"
has "the summary reports the balance left" "$work/summary" "^usdCredit  *10.5"

expect_exit 0 "users show of the erased user" "$noema" users show "$A" --store "$store"
has "the status is deactivated_by_admin" "$work/out" "^status  *deactivated_by_admin"
lacks "no profile" "$work/out" "Ada Lovelace"
lacks "no identity" "$work/out" "ada-1815"
lacks "no wallet" "$work/out" "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
has "the balance stays" "$work/out" "usdCredit 10.5"
expect_exit 2 "the identity finds nobody" "$noema" users show telegram:ada-1815 --store "$store"
expect_exit 0 "the ledger still verifies" "$noema" ledger verify --store "$store"
has "ledger ok" "$work/out" "ledger ok"

# Again: a success that removes nothing more. An unknown user and a bad id: exit 2.
expect_exit 0 "a second erase" "$noema" users erase "$A" --store "$store" --yes
has "the second erase says it was erased" "$work/out" "^alreadyErased  *yes"
has "the second erase removes nothing" "$work/out" "^identities  *0 removed"
expect_exit 2 "an unknown user" "$noema" users erase 65f1a2b3c4d5e6f708192aff --store "$store" --yes
expect_exit 2 "not an id" "$noema" users erase telegram:ada-1815 --store "$store" --yes

if [ "$failures" -gt 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all users erase checks passed"
