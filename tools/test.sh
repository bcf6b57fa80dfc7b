#!/usr/bin/env bash
# The README's test command (`npm test`): installs the real servers and the
# container tools the suite runs (idempotent), type-checks the whole tree, builds
# the images we ship (`npm run image:build`: fails over an image's budget; the
# container test runs the API image), then runs every jest test and ends with one
# plain summary line ("jest: N passed, N failed").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install-servers.sh
bash tools/install-containers.sh
npx tsc --noEmit -p .
npm run -s image:build
mkdir -p .cache
results=.cache/jest-results.json
rm -f "$results"
status=0
npx jest --json --outputFile="$results" "$@" || status=$?
if [[ -f "$results" ]]; then
  node -e '
    const r = require(process.argv[1]);
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
  ' "$PWD/$results"
fi
exit "$status"
