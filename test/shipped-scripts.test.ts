/**
 * Every shell script we ship, as the synthesized objects carry it: the `*.sh`
 * keys of the ConfigMaps and the `sh -c` scripts of the containers, in every
 * environment. Each parses as POSIX sh under dash (the shell of the Debian-based
 * images) and passes ShellCheck at every severity. Runs dash and ShellCheck in
 * child processes, so it is in the process lane (jest.process.config.js).
 */
import { execFileSync } from 'node:child_process';
import { ENVIRONMENTS, loadEnvironment } from '../stacks/environments';
import { type KubeObject, synthObjects } from '../stacks/synth';

interface Container {
  name: string;
  command?: string[];
  args?: string[];
}
interface PodSpec {
  initContainers?: Container[];
  containers?: Container[];
}

/** The scripts an object ships, by where they are (`ConfigMap/name/key`, `Job/name/container`). */
function scriptsOf(o: KubeObject): [string, string][] {
  if (o.kind === 'ConfigMap') {
    const data = (o as KubeObject & { data?: Record<string, string> }).data ?? {};
    return Object.entries(data)
      .filter(([key]) => key.endsWith('.sh'))
      .map(([key, text]) => [`ConfigMap/${o.metadata.name}/${key}`, text]);
  }
  const spec = o.spec as
    { template?: { spec?: PodSpec }; jobTemplate?: { spec?: { template?: { spec?: PodSpec } } } } | undefined;
  const pod = spec?.jobTemplate?.spec?.template?.spec ?? spec?.template?.spec;
  return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])].flatMap((c): [string, string][] => {
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    const i = argv.findIndex((a, j) => a === '-c' && /(^|\/)sh$/.test(argv[j - 1] ?? ''));
    return i < 0 ? [] : [[`${o.kind}/${o.metadata.name}/${c.name}`, argv[i + 1]]];
  });
}

/** Every place a script ships, and each distinct script once, under the first place it ships. */
const places: string[] = [];
const scripts = new Map<string, string>();
for (const env of Object.keys(ENVIRONMENTS)) {
  for (const [where, text] of synthObjects(loadEnvironment(env)).flatMap(scriptsOf)) {
    places.push(where);
    if (![...scripts.values()].includes(text)) scripts.set(`${env}: ${where}`, text);
  }
}

test('the scan finds the scripts of every tier', () => {
  for (const expected of [
    'ConfigMap/redis-config/redis-start.sh',
    'ConfigMap/redis-config/cluster-create.sh',
    'ConfigMap/pgbouncer-config/pgbouncer-start.sh',
    'ConfigMap/postgres-files/roles.sh',
    'ConfigMap/postgres-files/backup.sh',
    'ConfigMap/edge-nginx-conf/cert-reload.sh',
    'Job/postgres-credentials-generator-',
    'Job/postgres-tls-generator-',
  ]) {
    expect(places.join('\n')).toContain(expected);
  }
});

test.each([...scripts])('%s parses under dash and passes ShellCheck', (_where, text) => {
  expect(() => execFileSync('dash', ['-n'], { input: text })).not.toThrow();
  const shellcheck = (() => {
    try {
      return execFileSync('shellcheck', ['--shell=sh', '--severity=style', '-'], { input: text, encoding: 'utf8' });
    } catch (e) {
      return String((e as { stdout?: string }).stdout);
    }
  })();
  expect(shellcheck).toBe('');
});
