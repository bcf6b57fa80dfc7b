/**
 * `npm run resize`: the kubectl sequence that grows live volumes (patch each
 * claim, wait for the resize, re-create the StatefulSet with --cascade=orphan),
 * printed from the manifests and run against a stand-in `kubectl` that records
 * its calls and answers with the live sizes.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironment } from '../stacks/environments';
import { writeEnvironments } from '../stacks/manifests';
import { synthObjects } from '../stacks/synth';

const ROOT = join(__dirname, '..');
let dir: string;
/** The StatefulSet's manifest file (its number follows the object order, which other tiers change). */
let STATEFULSET_FILE: string;
const resize = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, ['tools/run.js', 'tools/manifests/resize.ts', ...args], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
  });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fastnext-resize-'));
  const prod = (size?: string) =>
    synthObjects(loadEnvironment('prod', size ? { postgres: { storage: { size } } } : {}));
  writeEnvironments(join(dir, 'before'), new Map([['prod', prod()]]));
  writeEnvironments(join(dir, 'after'), new Map([['prod', prod('200Gi')]]));
  STATEFULSET_FILE = readdirSync(join(dir, 'after', 'prod')).find((f) => /^\d+-statefulset-postgres\.yaml$/.test(f))!;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("prints prod's 100Gi -> 200Gi PostgreSQL sequence, and only for what grew", () => {
  const r = resize(['--dir', join(dir, 'after', 'prod'), '--from', join(dir, 'before', 'prod')]);
  expect(r.status).toBe(0);
  const commands = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('kubectl '))
    .map((l) => l.replace(/ +#.*$/, '').replace(join(dir, 'after', 'prod'), '<dir>'));
  const ns = '-n fastnext-prod';
  const patch = `'{"spec":{"resources":{"requests":{"storage":"200Gi"}}}}'`;
  const wait = (c: string) =>
    `kubectl ${ns} wait pvc/${c} '--for=jsonpath={.status.capacity.storage}=200Gi' --timeout=15m`;
  expect(commands).toEqual([
    `kubectl ${ns} patch pvc data-postgres-0 -p ${patch}`,
    `kubectl ${ns} patch pvc data-postgres-1 -p ${patch}`,
    `kubectl ${ns} patch pvc data-postgres-2 -p ${patch}`,
    wait('data-postgres-0'),
    wait('data-postgres-1'),
    wait('data-postgres-2'),
    `kubectl ${ns} delete statefulset postgres --cascade=orphan`,
    `kubectl apply -f <dir>/${STATEFULSET_FILE}`,
    `kubectl ${ns} rollout status statefulset/postgres --timeout=30m`,
  ]);
});

test('--apply runs the steps through kubectl, skipping claims already grown and StatefulSets already current', () => {
  // GIVEN a cluster where data-postgres-2 already has 200Gi and every template but PostgreSQL's is current
  const bin = join(dir, 'bin');
  const log = join(dir, 'kubectl.log');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'kubectl'),
    `#!/bin/sh
echo "$*" >> '${log}'
case "$*" in
  *"get pvc data-postgres-2"*) printf 200Gi ;;
  *"get pvc"*) printf 100Gi ;;
  *"get statefulset postgres"*) printf 100Gi ;;
  *"get statefulset prometheus"*) printf 50Gi ;;
  *"get statefulset alertmanager"*) printf 1Gi ;;
  *"get statefulset redis"*) printf 10Gi ;;
esac
`,
  );
  chmodSync(join(bin, 'kubectl'), 0o755);
  const r = resize(['--dir', join(dir, 'after', 'prod'), '--apply'], {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  const changing = calls.filter((c) => !c.includes(' get '));
  const file = (f: string) => join(dir, 'after', 'prod', f);
  expect(changing.map((c) => c.replace(/ -p .*| --(for|timeout)=.*/, ''))).toEqual([
    '-n fastnext-prod patch pvc data-postgres-0',
    '-n fastnext-prod patch pvc data-postgres-1',
    '-n fastnext-prod wait pvc/data-postgres-0',
    '-n fastnext-prod wait pvc/data-postgres-1',
    '-n fastnext-prod wait pvc/data-postgres-2',
    '-n fastnext-prod delete statefulset postgres --cascade=orphan',
    `apply -f ${file(STATEFULSET_FILE)}`,
    '-n fastnext-prod rollout status statefulset/postgres',
  ]);
  expect(r.stdout).toContain('skip: data-postgres-2 already has 200Gi or more');
});
