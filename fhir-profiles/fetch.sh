#!/usr/bin/env bash
# Download and unpack HL7's FHIR R4 (4.0.1) examples/definitions npm package
# into <repo>/.fhir-cache/hl7.fhir.r4.examples-4.0.1/ (gitignored).
# Idempotent: does nothing if the package is already unpacked.
# FHIR_CACHE_DIR overrides the cache directory (generate.py and run.py honour it too).
set -euo pipefail

PKG_NAME="hl7.fhir.r4.examples"
PKG_VERSION="4.0.1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${FHIR_CACHE_DIR:-$REPO/.fhir-cache}"
DEST="$CACHE/$PKG_NAME-$PKG_VERSION"
TGZ="$CACHE/$PKG_NAME-$PKG_VERSION.tgz"

if [ -f "$DEST/package/package.json" ] && [ -f "$DEST/.complete" ]; then
    echo "fetch.sh: $DEST already present"
    exit 0
fi

mkdir -p "$CACHE"
if [ ! -s "$TGZ" ]; then
    command -v npm >/dev/null 2>&1 || { echo "fetch.sh: npm is required" >&2; exit 1; }
    echo "fetch.sh: npm pack $PKG_NAME@$PKG_VERSION"
    (cd "$CACHE" && npm pack --silent "$PKG_NAME@$PKG_VERSION" >/dev/null)
fi
[ -s "$TGZ" ] || { echo "fetch.sh: $TGZ not found after npm pack" >&2; exit 1; }

TMP="$DEST.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP"
tar -xzf "$TGZ" -C "$TMP"
[ -f "$TMP/package/package.json" ] || { echo "fetch.sh: unexpected archive layout" >&2; rm -rf "$TMP"; exit 1; }
touch "$TMP/.complete"
rm -rf "$DEST"
mv "$TMP" "$DEST"
echo "fetch.sh: unpacked into $DEST"
