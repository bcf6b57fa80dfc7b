#!/usr/bin/env bash
# The README's test command (`npm test`): installs the real servers the suite
# runs (idempotent), type-checks the whole tree, then runs every jest test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install-servers.sh
npx tsc --noEmit -p .
npx jest "$@"
