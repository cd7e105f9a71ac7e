#!/usr/bin/env bash
# Regenerates docs/config.md from the option table of the `lifeline` binary (run it after adding or
# changing an option; the unit test ConfigReferenceTest fails while the file is stale).
# Usage: scripts/gen-config-doc.sh [path/to/lifeline]  (default: build/cli/lifeline)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
LIFELINE=${1:-$REPO/build/cli/lifeline}
[ -x "$LIFELINE" ] || { echo "gen-config-doc: no lifeline binary at $LIFELINE: build it first" >&2; exit 2; }
"$LIFELINE" config-reference > "$REPO/docs/config.md.new"
mv "$REPO/docs/config.md.new" "$REPO/docs/config.md"
echo "gen-config-doc: wrote docs/config.md"
