#!/bin/sh
# The failover tests' record operation: one line per run,
# "ran EXECUTION DEPLOYMENT", appended to $JOURNAL (short appends are
# atomic, so replicas share the file). While $JOURNAL.hold exists the run
# waits after its line (a test pauses orch meanwhile).
set -eu
echo "ran $ORCH_EXECUTION $ORCH_DEPLOYMENT" >> "$JOURNAL"
while [ -e "$JOURNAL.hold" ]; do sleep 0.05; done
