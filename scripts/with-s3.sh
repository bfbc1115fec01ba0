#!/usr/bin/env bash
# Starts an S3-compatible server on loopback (moto's server mode, from PyPI,
# in a virtual environment kept under ~/.cache/nara-s3), creates a bucket, and
# runs the given command with NARA_TEST_S3=s3://nara-test/ci and the AWS_*
# variables pointing at it; stops the server afterwards.
#   scripts/with-s3.sh cargo test --workspace
set -euo pipefail

venv="${NARA_S3_VENV:-$HOME/.cache/nara-s3/venv}"
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.1.22"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log=$(mktemp /tmp/nara-s3.XXXXXX.log)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$port/nara-test" || { echo "with-s3: no S3 server (see $log)" >&2; cat "$log" >&2; exit 1; }

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=nara-test AWS_SECRET_ACCESS_KEY=nara-test-secret AWS_REGION=us-east-1
export NARA_TEST_S3=s3://nara-test/ci
"$@"
