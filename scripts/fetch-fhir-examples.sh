#!/usr/bin/env bash
# Downloads the official HL7 FHIR R4 examples (npm package hl7.fhir.r4.examples 4.0.1, CC0)
# into DEST and unpacks them, for tests/it/fhir_examples.rs (KIBAN_FHIR_EXAMPLES_DIR=DEST).
#
#   scripts/fetch-fhir-examples.sh DEST
#
# The tarball holds DEST/package/*.json: 5,306 example resources (one per file) plus the
# npm manifest package.json, which is not an example (npm counts 5,307 files). Idempotent:
# when DEST/package already holds the examples, nothing is downloaded. Prints the number of
# example JSON files.
set -euo pipefail

PACKAGE="hl7.fhir.r4.examples"
VERSION="4.0.1"

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
dest="$1"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
marker="$dest/.complete-$PACKAGE-$VERSION"

count_examples() {
    # Every *.json of the package except the npm manifest (and npm's hidden index files).
    find "$dest/package" -maxdepth 1 -type f -name '*.json' ! -name 'package.json' ! -name '.*' | wc -l
}

if [[ -f "$marker" && -d "$dest/package" ]]; then
    echo "$(count_examples) FHIR R4 example files in $dest/package (already there)"
    exit 0
fi

tarball="$PACKAGE-$VERSION.tgz"
if [[ ! -f "$dest/$tarball" ]]; then
    # npm pack writes the tarball into the current directory (--pack-destination needs npm 7.18).
    (cd "$dest" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
fi
rm -rf "$dest/package.partial"
mkdir -p "$dest/package.partial"
tar -xzf "$dest/$tarball" -C "$dest/package.partial"
rm -rf "$dest/package"
mv "$dest/package.partial/package" "$dest/package"
rmdir "$dest/package.partial"
touch "$marker"
echo "$(count_examples) FHIR R4 example files in $dest/package"
