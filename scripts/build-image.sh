#!/usr/bin/env bash
# Builds nara's container image from nothing (no registry is needed): a root
# filesystem of the nara binary, the shared libraries it links (copied from
# this machine, Debian's), a passwd entry for the unprivileged user 65532 and
# an empty /data, then `buildah bud` with deploy/Containerfile (FROM scratch).
# Exports the image as an OCI archive.
#
#   scripts/build-image.sh [NARA_BINARY] [OUT.oci.tar]
#   buildah --storage-driver vfs run --isolation chroot --network host nara:latest -- demo …
#
# buildah runs daemonless, rootless or as root, with the vfs driver and chroot
# isolation (no overlay mounts or user namespaces needed).
set -euo pipefail
cd "$(dirname "$0")/.."
nara=${1:-target/release/nara}
out=${2:-target/nara-image.oci.tar}
tag=${NARA_IMAGE_TAG:-nara:latest}
buildah=(buildah --storage-driver vfs)

if [ ! -x "$nara" ]; then
  echo "build-image: no nara binary at $nara (cargo build --release --bin nara)" >&2
  exit 1
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$context/data"
# Debug information is for developers' machines, not the image.
objcopy --strip-debug "$nara" "$root/usr/local/bin/nara"
# The dynamic loader and every library the binary links, at the same paths.
ldd "$nara" | awk '/=>/ && $3 ~ /^\// {print $3} /^[ \t]*\/.*ld-linux/ {print $1}' | while read -r lib; do
  cp -L --parents "$lib" "$root"
done
printf 'nara:x:65532:65532:nara:/data:/sbin/nologin\n' >"$root/etc/passwd"
printf 'nara:x:65532:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
cp deploy/Containerfile "$context/Containerfile"

"${buildah[@]}" bud --isolation chroot --layers=false -q -f "$context/Containerfile" -t "$tag" "$context" >/dev/null
mkdir -p "$(dirname "$out")"
rm -f "$out"
"${buildah[@]}" push -q "$tag" "oci-archive:$out:$tag"
size=$(du -h "$out" | cut -f1)
echo "build-image: $tag, $size as an OCI archive at $out"
