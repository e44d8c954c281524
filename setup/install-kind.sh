#!/usr/bin/env bash
# Install kind (pinned) to /usr/local/bin/kind from the Go module proxy.
# Idempotent: does nothing when the right version is already installed.
#   bash setup/install-kind.sh
set -euo pipefail
KIND_VERSION="${KIND_VERSION:-v0.30.0}"
DEST="${KIND_DEST:-/usr/local/bin/kind}"
export PATH="/usr/local/go/bin:$PATH"

current=""
if [[ -x "$DEST" ]]; then
  current="$("$DEST" version 2>/dev/null | awk '{print $2}')" || current=""
fi
if [[ "$current" == "$KIND_VERSION" ]]; then
  echo "kind $KIND_VERSION already installed at $DEST"
  exit 0
fi

command -v go >/dev/null || { echo "install-kind: Go toolchain not found (expected /usr/local/go/bin/go)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "installing kind $KIND_VERSION to $DEST (was: ${current:-none})"
GOBIN="$tmp" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
  go install "sigs.k8s.io/kind@$KIND_VERSION"
install -D -m 0755 "$tmp/kind" "$DEST"
"$DEST" version
