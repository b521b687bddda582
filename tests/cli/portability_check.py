#!/usr/bin/python3
"""Reads noema's export files with an independent Extended JSON reader (Debian's
python3-bson, bson.json_util) and checks their values.

    portability_check.py CANONICAL_DIR RELAXED_DIR OUT_DIR

Every file of CANONICAL_DIR and RELAXED_DIR must parse line by line to the same documents
(an int64 is an Int64 in the canonical form; money a Decimal128; dates datetimes with their
milliseconds). The canonical documents are written again by bson.json_util into OUT_DIR,
for noema to import (the caller checks that it gets the same store back).
"""
import datetime
import os
import sys

from bson import json_util
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS
from bson.objectid import ObjectId

OPTIONS = CANONICAL_JSON_OPTIONS.with_options(tz_aware=True)


def read(path, options):
    with open(path, encoding="utf-8") as f:
        return [json_util.loads(line, json_options=options) for line in f if line.strip()]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


canonical_dir, relaxed_dir, out_dir = sys.argv[1:4]
os.makedirs(out_dir, exist_ok=True)
names = sorted(n for n in os.listdir(canonical_dir) if n.endswith(".json"))
# The seven ADR-002 collections and noema's analytics rollups (activityDaily).
EXPECTED = ["activityDaily.json", "generationOutputs.json", "transactions.json", "userCore.json",
            "userEconomy.json", "userEvents.json", "userPreferences.json", "userSessions.json"]
if names != EXPECTED:
    fail("expected the files %s, found %s" % (EXPECTED, names))
total = 0
for name in names:
    canonical = read(os.path.join(canonical_dir, name), OPTIONS)
    relaxed = read(os.path.join(relaxed_dir, name), OPTIONS)
    if canonical != relaxed:
        fail("%s: the canonical and relaxed files hold different values" % name)
    for doc in canonical:
        if not isinstance(doc["_id"], ObjectId):
            fail("%s: _id is not an ObjectId: %r" % (name, doc["_id"]))
    total += len(canonical)
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as out:
        for doc in canonical:
            out.write(json_util.dumps(doc, json_options=CANONICAL_JSON_OPTIONS) + "\n")

economy = read(os.path.join(canonical_dir, "userEconomy.json"), OPTIONS)
credits = sorted(str(d["usdCredit"]) for d in economy)
if credits != ["0.00", "10.50"]:
    fail("usdCredit values are %s" % credits)
for d in economy:
    if not isinstance(d["usdCredit"], Decimal128):
        fail("usdCredit is not a Decimal128")
    if not isinstance(d["exp"], Int64):
        fail("exp is not an Int64 in the canonical file: %r" % type(d["exp"]))
    if not isinstance(d["createdAt"], datetime.datetime):
        fail("createdAt is not a date")
millis = [d["createdAt"].microsecond // 1000 for d in economy]
if 123 not in millis:
    fail("a date lost its milliseconds: %s" % millis)
big = [d["exp"] for d in economy if d["exp"] > 2**31]
if big != [5000000000]:
    fail("a long beyond int32 was not kept exactly: %s" % big)
print("ok: %d documents in %d files read by bson.json_util" % (total, len(names)))
