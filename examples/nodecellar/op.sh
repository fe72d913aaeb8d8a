#!/bin/sh
# The operations of the nodecellar example: each appends one line,
# "OPERATION INSTANCE DETAIL", to $JOURNAL, so what ran, where and in which
# order can be read back. orch's script plugin gives the operation's inputs as
# environment variables and the instance as ORCH_INSTANCE; a create may publish
# runtime attributes (PUBLISH="key=value ...") to $ORCH_RUNTIME_FILE.
# While the file $JOURNAL.slow exists, a create waits (tests kill orch then);
# if $JOURNAL.abandon exists when it stops waiting, it gives up without
# recording the create ("abandoned INSTANCE" instead): the operation orch was
# killed in, as if its machine went down too.
set -eu
op="$1"
mkdir -p "$(dirname "$JOURNAL")"
if [ "$op" = create ] && [ -e "$JOURNAL.slow" ]; then
  echo "begin-create $ORCH_INSTANCE" >> "$JOURNAL"
  while [ -e "$JOURNAL.slow" ]; do sleep 0.1; done
  if [ -e "$JOURNAL.abandon" ]; then
    echo "abandoned $ORCH_INSTANCE" >> "$JOURNAL"
    exit 1
  fi
fi
echo "$op $ORCH_INSTANCE ${DETAIL:-}" >> "$JOURNAL"
if [ -n "${PUBLISH:-}" ]; then
  for kv in $PUBLISH; do echo "$kv" >> "$ORCH_RUNTIME_FILE"; done
fi
