#!/bin/sh
# The operations of the nodecellar example: each appends one line,
# "OPERATION INSTANCE DETAIL", to $JOURNAL, so what ran, where and in which
# order can be read back. orch's script plugin gives the operation's inputs as
# environment variables and the instance as ORCH_INSTANCE; a create may publish
# runtime attributes (PUBLISH="key=value ...") to $ORCH_RUNTIME_FILE.
#
# For the kill tests: while the file $JOURNAL.slow exists, a create waits
# ("begin-create INSTANCE"). While $JOURNAL.orphans exists, a create whose
# orch is gone (killed: the parent is no longer a live orch process, checked
# on start and while waiting) gives up without recording the create
# ("abandoned INSTANCE"), as if its machine had gone down with orch. A
# create orch started just before it was killed may only get here after
# the test stopped holding creates back; it gives up too.
set -eu
op="$1"
mkdir -p "$(dirname "$JOURNAL")"
orch_alive() { [ "$(cat "/proc/$PPID/comm" 2>/dev/null)" = orch ]; }
if [ "$op" = create ]; then
  if [ -e "$JOURNAL.slow" ] || { [ -e "$JOURNAL.orphans" ] && ! orch_alive; }; then
    echo "begin-create $ORCH_INSTANCE" >> "$JOURNAL"
    while [ -e "$JOURNAL.slow" ] && { [ ! -e "$JOURNAL.orphans" ] || orch_alive; }; do sleep 0.1; done
    if [ -e "$JOURNAL.orphans" ] && ! orch_alive; then
      echo "abandoned $ORCH_INSTANCE" >> "$JOURNAL"
      exit 1
    fi
  fi
fi
echo "$op $ORCH_INSTANCE ${DETAIL:-}" >> "$JOURNAL"
if [ -n "${PUBLISH:-}" ]; then
  for kv in $PUBLISH; do echo "$kv" >> "$ORCH_RUNTIME_FILE"; done
fi
