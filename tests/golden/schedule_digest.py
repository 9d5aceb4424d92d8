#!/usr/bin/env python3
"""Prints a digest of a schedule file's rounds and header that ignores what
version 2 added (round evaluate/reset_optimizer, op phase, header holding,
config optimizer_state; ist_sync and warmup_epochs always written): equal
digests mean the same ops, ranks, blocks and bytes in every round."""
import hashlib
import json
import sys

s = json.load(open(sys.argv[1]))
s.pop("version", None)
s.pop("holding", None)
for k in ("optimizer_state", "ist_sync", "warmup_epochs"):
    s["config"].pop(k, None)
for r in s["rounds"]:
    r.pop("evaluate", None)
    r.pop("reset_optimizer", None)
    for op in r["sync"]:
        op.pop("phase", None)
print(hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest())
