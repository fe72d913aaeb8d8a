#!/bin/sh
# The database's operations in examples/maintenance (orch's script plugin
# runs them; never through a shell: the inputs are environment variables).
#   backup: writes the database's properties to $BACKUP_DIR/backup-<instance>-<time>.json
#           (fails when $BACKUP_DIR cannot be created)
#   notify: appends $MESSAGE to $BACKUP_DIR/notifications (or to /tmp when
#           $BACKUP_DIR cannot be created)
set -eu
case "$1" in
backup)
  mkdir -p "$BACKUP_DIR"
  printf '%s\n' "$ORCH_PROPERTIES" > "$BACKUP_DIR/backup-$ORCH_INSTANCE-$(date +%s%N).json"
  echo "backed up $ORCH_INSTANCE to $BACKUP_DIR"
  ;;
notify)
  dir="$BACKUP_DIR"
  mkdir -p "$dir" 2>/dev/null || dir="${TMPDIR:-/tmp}"
  printf '%s %s\n' "$(date -u +%FT%TZ)" "$MESSAGE" >> "$dir/notifications"
  echo "notified: $MESSAGE"
  ;;
*)
  echo "unknown operation $1" >&2
  exit 1
  ;;
esac
