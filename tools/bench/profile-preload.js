/**
 * Loaded with `node --require` into a process the benchmark profiles (Node 20 refuses
 * `--cpu-prof` in NODE_OPTIONS). Idle until SIGUSR2: the first starts V8's sampling profiler,
 * the second stops it and writes `<FASTNEXT_PROFILE_DIR>/<pid>-<n>.cpuprofile`.
 */
'use strict';
const inspector = require('node:inspector');
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.FASTNEXT_PROFILE_DIR;
let session;
let n = 0;
if (dir) {
  process.on('SIGUSR2', () => {
    if (!session) {
      session = new inspector.Session();
      session.connect();
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    const s = session;
    session = undefined;
    s.post('Profiler.stop', (err, result) => {
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${process.pid}-${n++}.cpuprofile`);
      // Written under a temporary name first: the benchmark waits for the final name.
      fs.writeFileSync(`${file}.tmp`, err ? '{}' : JSON.stringify(result.profile));
      fs.renameSync(`${file}.tmp`, file);
      s.disconnect();
    });
  });
}
