#!/bin/sh
# MinIO's command line, served by the JuiceFS gateway:
#   minio server DIR [--address [HOST]:PORT]
# with MINIO_ROOT_USER / MINIO_ROOT_PASSWORD as the credentials.
set -eu
if [ "${1:-}" != server ] || [ -z "${2:-}" ]; then
  echo "usage: minio server DIR [--address [HOST]:PORT] (JuiceFS gateway behind MinIO's command line)" >&2
  exit 2
fi
dir="$2"
shift 2
address=":9000"
while [ $# -gt 0 ]; do
  case "$1" in
    --address) address="$2"; shift 2 ;;
    --address=*) address="${1#--address=}"; shift ;;
    *) shift ;;
  esac
done
case "$address" in :*) address="0.0.0.0$address" ;; esac
mkdir -p "$dir"
juicefs format --no-agent --storage file --bucket "$dir/blob/" --trash-days 0 \
  "sqlite3://$dir/meta.db" minio >/dev/null
exec juicefs gateway --no-agent --no-usage-report --multi-buckets --keep-etag \
  --backup-meta 0 --cache-dir "$dir/cache" --metrics 127.0.0.1:9567 \
  "sqlite3://$dir/meta.db" "$address"
