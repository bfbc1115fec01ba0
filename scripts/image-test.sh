#!/usr/bin/env bash
# The container image, built and run as an operator would: scripts/build-image.sh
# makes it from the given binary; `buildah run` (chroot isolation, the host's
# loopback) starts `nara demo` in it; the test waits for /readyz, checks that
# the process is not root and that the data went to the /data volume, calls
# the API, and stops it.
#   scripts/image-test.sh target/debug/nara
set -euo pipefail
cd "$(dirname "$0")/.."
nara=${1:-target/debug/nara}
work=$(mktemp -d)
buildah=(buildah --storage-driver vfs)
ctr=""
cleanup() {
  [ -n "${run_pid:-}" ] && kill "$run_pid" 2>/dev/null || true
  pkill -f "nara demo --data /data/demo --listen 127.0.0.1:${port:-0}" 2>/dev/null || true
  [ -n "$ctr" ] && "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/build-image.sh "$nara" "$work/nara.oci.tar"
"${buildah[@]}" inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Volumes}}' nara:latest; echo
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
ctr=$("${buildah[@]}" from -q nara:latest)
"${buildah[@]}" run --isolation chroot --network host "$ctr" -- \
  /usr/local/bin/nara demo --data /data/demo --listen "127.0.0.1:$port" >"$work/demo.log" 2>&1 &
run_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
if ! curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null; then
  echo "image-test: nara demo in the image never became ready" >&2
  tail -20 "$work/demo.log" >&2
  exit 1
fi
pid=$(pgrep -f "nara demo --data /data/demo --listen 127.0.0.1:$port" | tail -1)
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
if [ "$uid" = "0" ]; then
  echo "image-test: nara runs as root in the image" >&2
  exit 1
fi
# The data directory lives on the /data volume, not in the image's layers.
grep -q " /data " "/proc/$pid/mountinfo" || { echo "image-test: /data is not a volume" >&2; exit 1; }
test -f "/proc/$pid/root/data/demo/ledger.key"
services=$(curl -fsS "http://127.0.0.1:$port/api/v1/services?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
echo "image-test: nara demo served from the image (uid $uid, data on the /data volume, $services services in the catalogue)"
