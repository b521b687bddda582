#!/usr/bin/env bash
# `noema report` as an operator runs it: text, JSON and HTML over a small demo store,
# the text's figures checked against the JSON's, and bad flags refused (exit 2, one line
# naming the flag) without creating anything.
# usage: report_test.sh NOEMA_BINARY PROJECT_DIR
set -uo pipefail
noema=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
check() {  # check NAME COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi
}
store="sqlite:$work/data/noema.db"

"$noema" demo --store "$store" --users 8 --days 5 --seed 3 >"$work/demo" 2>&1
check "a demo store to report on" [ $? -eq 0 ]

"$noema" report --store "$store" --format json >"$work/report.json" 2>"$work/err"
check "json: exit 0" [ $? -eq 0 ]
check "json: one JSON document with every section" /usr/bin/python3 -c '
import json, sys
report = json.load(open(sys.argv[1]))
for key in ["activeUsers", "newAccounts", "sessions", "events", "commands", "funnel",
            "generations", "credit", "retention", "archetypes", "exp"]:
    assert key in report, key
' "$work/report.json"

"$noema" report --store "$store" >"$work/report.txt" 2>"$work/err"
check "text: exit 0" [ $? -eq 0 ]
# The Active users table has a column per platform the JSON reports, "system" included
# (service-written events), and the same DAU per day as the JSON.
check "text: the active users agree with the JSON, platform by platform" /usr/bin/python3 -c '
import json, sys
report = json.load(open(sys.argv[1]))
lines = open(sys.argv[2]).read().splitlines()
start = lines.index("== Active users ==")
header = lines[start + 1].split()
days = report["activeUsers"]["days"]
platforms = sorted({p for d in days for p in d["dauByPlatform"]})
assert header == ["day", "dau", "wau", "mau"] + platforms, (header, platforms)
assert "system" in platforms, platforms
for offset, day in enumerate(days):
    row = lines[start + 2 + offset].split()
    assert row[0] == day["day"], (row, day)
    expected = [day["dau"], day["wau"], day["mau"]] + [day["dauByPlatform"].get(p, 0) for p in platforms]
    assert [int(x) for x in row[1:]] == expected, (row, expected)
' "$work/report.json" "$work/report.txt"

"$noema" report --store "$store" --format html >"$work/report.html" 2>"$work/err"
check "html: exit 0, one page" bash -c "head -c 15 '$work/report.html' | grep -q '<!DOCTYPE html>' && grep -q '</html>' '$work/report.html'"

# Archetype thresholds from a file (--archetype-rules): with TouchAndGo at 0 sessions at
# most, nobody is TouchAndGo any more.
echo '{"touchAndGoSessionsMax": 0, "newLightSessionsMax": 100}' >"$work/rules.json"
"$noema" report --store "$store" --format json --archetype-rules "$work/rules.json" \
  >"$work/ruled.json" 2>"$work/err"
check "--archetype-rules: exit 0" [ $? -eq 0 ]
check "--archetype-rules: the thresholds apply" /usr/bin/python3 -c '
import json, sys
default = json.load(open(sys.argv[1]))["archetypes"]
ruled = json.load(open(sys.argv[2]))["archetypes"]
assert default["mix"]["TouchAndGo"] > 0, default
assert ruled["mix"]["TouchAndGo"] == 0, ruled
assert ruled["users"] == default["users"], (ruled, default)
' "$work/report.json" "$work/ruled.json"

refuse() {  # refuse NAME PATTERN ARGS...: exit 2, one line on stderr matching PATTERN
  "$noema" report "${@:3}" >"$work/out" 2>"$work/err"
  local code=$?
  if [ $code -eq 2 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q -- "$2" "$work/err"; then
    echo "ok: $1"
  else
    echo "FAIL: $1: exit $code"; cat "$work/err"; failures=$((failures + 1))
  fi
}
refuse "a day the calendar lacks" "from: no such day" --store "$store" --from 2026-02-30
refuse "a day before 1970" "from: days before 1970-01-01" --store "$store" --from 1969-12-31 --to 1970-01-02
refuse "to before from" "to" --store "$store" --from 2026-03-02 --to 2026-03-01
refuse "a range over 366 days" "from" --store "$store" --from 2025-01-01 --to 2026-01-02
refuse "weeks out of range" "weeks" --store "$store" --weeks 0
refuse "an unknown format" "format" --store "$store" --format xml
refuse "a store that does not exist" "no store at" --store "sqlite:$work/nowhere/noema.db"
echo '{"touchAndGoSesionsMax": 3}' >"$work/typo.json"
refuse "an unknown archetype setting" "touchAndGoSesionsMax: .*unknown archetype setting" \
  --store "$store" --archetype-rules "$work/typo.json"
echo '{"focusedTopCommandShareMin": 1.5}' >"$work/share.json"
refuse "a share above 1" "focusedTopCommandShareMin" --store "$store" --archetype-rules "$work/share.json"
echo '{"iterateCommands": ["/again", 7]}' >"$work/list.json"
refuse "a command that is not a string" "iterateCommands.1" --store "$store" --archetype-rules "$work/list.json"
refuse "an unreadable rules file" "cannot read" --store "$store" --archetype-rules "$work/none.json"
# The file limit, 64 KiB, at its edge: a JSON object padded with spaces to the byte.
pad() { /usr/bin/python3 -c 'import sys; body = "{}"; sys.stdout.write(body + " " * (int(sys.argv[1]) - len(body)))' "$1"; }
pad 65536 >"$work/edge.json"
"$noema" report --store "$store" --format json --archetype-rules "$work/edge.json" >/dev/null 2>"$work/err"
check "a rules file of exactly 64 KiB is read" [ $? -eq 0 ]
pad 65537 >"$work/over.json"
refuse "a rules file over 64 KiB" "larger than 65536 bytes" --store "$store" --archetype-rules "$work/over.json"
check "and it was not created" [ ! -e "$work/nowhere" ]

[ "$failures" -eq 0 ] && echo "report_test: all passed" || echo "report_test: $failures failed"
exit $((failures > 0))
