#!/usr/bin/env bash
# Set-up if needed, build, and run lifeline's main job on local defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
exec ./build/cli/lifeline demo "$@"
