/**
 * The fast lane (`npm run test:unit`, jest.unit.config.js) leaves out exactly
 * the tests that start real servers (the server lane) and those that run other
 * programs (the process lane): a new such test that is not listed would slow
 * the lane down, and a listed in-process test would never run in it. The three
 * lanes are the whole suite. (This file runs jest itself, so it is in the
 * process lane.)
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(__dirname, '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { SERVER_TESTS, PROCESS_TESTS } = require('../jest.unit.config.js') as {
  SERVER_TESTS: string[];
  PROCESS_TESTS: string[];
};

/** What a test that starts servers uses: the launchers (any of their modules), the twin, nginx, Prometheus, Alertmanager or promtool. */
const SERVER_MODULES =
  /from '[./]*(tools\/runtime\/(launcher(\/[\w-]+)?|twin\/twin|nginx-runner|alertmanager|metrics-check\/(servers|fake-apiserver))|helpers\/servers)'|'promtool'\)/;

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : testFiles(path);
    return name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

/** A test that runs other programs imports child_process (itself, or through a helper of test/helpers). */
const PROCESS_MODULES = /from '(node:)?child_process'|from '[./]*helpers\/edge-http'/;

const files = [...testFiles(join(root, 'test')), ...testFiles(join(root, 'service', 'test'))];
const inList = (list: string[]) => (f: string) => list.some((p) => (p.endsWith('/') ? f.startsWith(p) : f === p));

test('every test file that starts servers is out of the fast lane, and only those', () => {
  const listed = inList(SERVER_TESTS);
  const startsServers = files.filter((f) => SERVER_MODULES.test(readFileSync(join(root, f), 'utf8')));
  expect(startsServers.filter((f) => !listed(f))).toEqual([]);
  expect(files.filter(listed).filter((f) => !startsServers.includes(f))).toEqual([]);
});

test('every other test file that runs programs is in the process lane, and only those', () => {
  const listed = inList(PROCESS_TESTS);
  const runsPrograms = files
    .filter((f) => !inList(SERVER_TESTS)(f))
    .filter((f) => PROCESS_MODULES.test(readFileSync(join(root, f), 'utf8')));
  expect(runsPrograms.filter((f) => !listed(f))).toEqual([]);
  expect(files.filter(listed).filter((f) => !runsPrograms.includes(f))).toEqual([]);
});

test('the server lane (jest.server.config.js, one file at a time) and the process lane run exactly the listed files: the three lanes are the whole suite', () => {
  const list = (config: string) =>
    execFileSync(join(root, 'node_modules', '.bin', 'jest'), ['-c', config, '--listTests'], {
      cwd: root,
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean)
      .map((f) => relative(root, f))
      .sort();
  const server = list('jest.server.config.js');
  const processLane = list('jest.process.config.js');
  const unit = list('jest.unit.config.js');
  const all = list('jest.config.js');
  expect(server.length).toBeGreaterThan(0);
  expect(processLane.sort()).toEqual([...PROCESS_TESTS].sort());
  expect(server.filter((f) => unit.includes(f) || processLane.includes(f))).toEqual([]);
  expect(processLane.filter((f) => unit.includes(f))).toEqual([]);
  expect([...server, ...processLane, ...unit].sort()).toEqual(all);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  expect((require('../jest.server.config.js') as { maxWorkers: number }).maxWorkers).toBe(1);
});
