#!/bin/sh
# The operations of the files example. orch's script plugin gives the
# operation inputs as environment variables (TARGET, CONTENT, JOURNAL) and
# the node as ORCH_NODE; runtime properties go to $ORCH_RUNTIME_FILE.
set -eu
[ -n "${JOURNAL:-}" ] && echo "$1 $ORCH_NODE" >> "$JOURNAL"
case "$1" in
  mkdir)  mkdir -p -- "$TARGET" ;;
  rmdir)  rm -rf -- "$TARGET" ;;
  write)  printf '%s\n' "$CONTENT" > "$TARGET"
          echo "size=$(wc -c < "$TARGET" | tr -d ' ')" >> "$ORCH_RUNTIME_FILE" ;;
  remove) rm -f -- "$TARGET" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
echo "$1 $TARGET done"
