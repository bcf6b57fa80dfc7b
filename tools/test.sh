#!/usr/bin/env bash
# The README's test command (`npm test`): installs the real servers and the
# container tools the suite runs (idempotent), type-checks the whole tree, builds
# the images we ship (`npm run image:build`: fails over an image's budget; the
# container test runs the API image), then runs every jest test in three lanes and
# ends with one plain summary line ("jest: N passed, N failed").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install-servers.sh
bash tools/install-containers.sh
npx tsc --noEmit -p .
npm run -s image:build
mkdir -p .cache
# Three lanes: the fast lane (in-process tests only, jest.unit.config.js, two workers),
# the process lane (tests that run other programs but no server, jest.process.config.js,
# two workers), then the server lane one file at a time (jest.server.config.js: whole
# tiers under timed drills must not share this 2-core machine with each other). All
# always run.
status=0
summary=()
for lane in unit process server; do
  results=".cache/jest-$lane.json"
  rm -f "$results"
  echo "== jest: the $lane lane"
  # --passWithNoTests: `npm test -- <file>` names files of one lane only.
  npx jest -c "jest.$lane.config.js" --passWithNoTests --json --outputFile="$results" "$@" || status=$?
  if [[ -f "$results" ]]; then summary+=("$PWD/$results"); else status=1; fi
done
node -e '
  let passed = 0, failed = 0, skipped = 0;
  for (const f of process.argv.slice(1)) {
    const r = require(f);
    passed += r.numPassedTests;
    failed += r.numFailedTests + r.numRuntimeErrorTestSuites;
    skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`jest: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "${summary[@]}"
exit "$status"
