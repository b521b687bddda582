#!/usr/bin/python3
"""A scripted MongoDB on loopback for noema's wire-level tests (run with /usr/bin/python3,
which has Debian's python3-mockupdb).

    mock_mongod.py --scenario FILE --record FILE [--timeout SECONDS]

The scenario is a JSON object (MongoDB Extended JSON, canonical or relaxed):

    {"topology": "replicaset" | "sharded" | "standalone",  # what hello says
     "initialised": true,                        # answer listCollections with nameOnly by
                                                 # listing noema's seven collections
     "steps": [{"command": "insert", "reply": {...}},      # reply ("ok": 1 if absent)
               {"command": "find", "hangup": true}, ...]}  # or close the connection

Every request is answered by the next step when its command name matches that step's;
otherwise it is a handshake (hello / isMaster: answered from "topology"), endSessions
(answered ok), listCollections with nameOnly when "initialised" is set, or unexpected:
it is then answered with an error (code 8, "mock: unexpected command") so the client
sees it. Each request is appended to the record file as one JSON line (canonical
Extended JSON): {"command": ..., "kind": "step" | "handshake" | "auto" | "unexpected",
"step": index or null, "doc": the command document}.

Prints "PORT <n>" on stdout once listening. Stops when stdin reaches end of file (the
test closes it) or after --timeout seconds, whichever comes first.
"""

import argparse
import datetime
import json
import os
import sys
import threading

from bson import json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONMode, JSONOptions
from bson.objectid import ObjectId
from mockupdb import MockupDB

COLLECTIONS = ["userCore", "userEconomy", "userPreferences", "transactions",
               "userSessions", "userEvents", "generationOutputs", "activityDaily"]
RECORD_OPTIONS = JSONOptions(json_mode=JSONMode.CANONICAL,
                             uuid_representation=UuidRepresentation.STANDARD)
UNEXPECTED_CODE = 8  # UnknownError


class Script:
    def __init__(self, scenario, record_path):
        self.topology = scenario.get("topology", "replicaset")
        self.initialised = scenario.get("initialised", True)
        self.steps = scenario.get("steps", [])
        self.next_step = 0
        self.lock = threading.Lock()
        self.record = open(record_path, "w", encoding="utf-8")
        self.port = 0
        self.connection_ids = 0
        self.election_id = ObjectId()

    def write(self, kind, command, step, doc):
        if self.record.closed:
            return
        line = json.dumps({"command": command, "kind": kind, "step": step,
                           "doc": json.loads(json_util.dumps(doc, json_options=RECORD_OPTIONS))})
        self.record.write(line + "\n")
        self.record.flush()

    def hello(self):
        address = "127.0.0.1:%d" % self.port
        self.connection_ids += 1
        reply = {"ismaster": True, "isWritablePrimary": True, "helloOk": True,
                 "maxWireVersion": 13, "minWireVersion": 0,
                 "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000,
                 "maxWriteBatchSize": 100000, "logicalSessionTimeoutMinutes": 30,
                 "localTime": datetime.datetime.now(datetime.timezone.utc),
                 "connectionId": self.connection_ids, "ok": 1}
        if self.topology == "sharded":
            reply["msg"] = "isdbgrid"
        if self.topology == "replicaset":
            reply.update({"setName": "rs0", "setVersion": 1, "hosts": [address],
                          "primary": address, "me": address, "secondary": False,
                          "electionId": self.election_id})
        return reply

    def handle(self, request):
        """The catch-all responder: answers every request; returns True."""
        doc = request.doc
        command = next(iter(doc), "")
        with self.lock:
            if command.lower() in ("ismaster", "hello"):
                self.write("handshake", command, None, doc)
                return request.replies(self.hello())
            if self.next_step < len(self.steps) and self.steps[self.next_step].get(
                    "command") == command:
                index = self.next_step
                step = self.steps[index]
                self.next_step += 1
                self.write("step", command, index, doc)
                if step.get("hangup"):
                    return request.hangup()
                return request.replies(step.get("reply", {"ok": 1}))
            if command == "endSessions":
                self.write("auto", command, None, doc)
                return request.replies({"ok": 1})
            if command == "listCollections" and self.initialised and doc.get("nameOnly"):
                self.write("auto", command, None, doc)
                batch = [{"name": name, "type": "collection"} for name in COLLECTIONS]
                return request.replies({"cursor": {"id": 0, "ns": "%s.$cmd.listCollections" %
                                                   doc.get("$db", "noema"),
                                                   "firstBatch": batch}})
            self.write("unexpected", command, None, doc)
            expected = (self.steps[self.next_step].get("command")
                        if self.next_step < len(self.steps) else "nothing")
            return request.replies({"ok": 0, "code": UNEXPECTED_CODE,
                                    "codeName": "UnknownError",
                                    "errmsg": "mock: unexpected command %s (the script expects "
                                              "%s)" % (command, expected)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    with open(args.scenario, encoding="utf-8") as f:
        scenario = json_util.loads(f.read())
    script = Script(scenario, args.record)
    server = MockupDB(port=None, request_timeout=args.timeout)
    # MockupDB binds "localhost", which a minimal system (a fresh chroot, a container)
    # may not resolve; bind the loopback address itself.
    server._address = ("127.0.0.1", 0)
    server.autoresponds(script.handle)
    script.port = server.run()
    print("PORT %d" % script.port, flush=True)

    # Stop when the test closes stdin, or at the deadline.
    done = threading.Event()

    def wait_for_eof():
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    done.wait(args.timeout)
    with script.lock:
        script.record.close()
    # Leave at once: MockupDB.stop() waits up to a second for its accept loop, and the
    # operating system closes the sockets anyway.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
