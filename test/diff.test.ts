/**
 * `npm run diff` on fixture pairs (test/fixtures/diff/<case>/{base,head}) and
 * against a git ref of this repository.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';
import { main as diff } from '../tools/manifests/diff/cli';
import { lineDiff } from '../tools/manifests/diff/lines';
import { diffEnvironment } from '../tools/manifests/diff/object-diff';

const FIXTURES = path.join(__dirname, 'fixtures', 'diff');
const pair = (name: string) => [
  '--base-dir',
  path.join(FIXTURES, name, 'base'),
  '--head-dir',
  path.join(FIXTURES, name, 'head'),
];

/** Runs the CLI and returns its exit code, stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  const error = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err += `${a.join(' ')}\n`;
  });
  try {
    return { code: await diff(args), out, err };
  } finally {
    write.mockRestore();
    error.mockRestore();
  }
}

describe('npm run diff on fixture pairs', () => {
  it('shows a renamed container as one removed and one added item, not as changed fields', async () => {
    const { code, out } = await run([...pair('renamed-container'), '--env', 'prod']);
    expect(code).toBe(1);
    expect(out).toBe(
      [
        'prod: 1 changed, 0 added, 0 removed',
        '  ~ Deployment shop/api',
        '      - spec.template.spec.containers[name=api]: {"name":"api","image":"example/api:1.0.0","ports":[{"name":"http","containerPort":8000}]}',
        '      + spec.template.spec.containers[name=app]: {"name":"app","image":"example/api:1.0.0","ports":[{"name":"http","containerPort":8000}]}',
        '      ~ spec.template.spec.containers[name=exporter].image: "example/exporter:2.0.0" → "example/exporter:2.0.1"',
        '',
      ].join('\n'),
    );
  });

  it('shows reordered named lists as a change of order only', async () => {
    const { code, out } = await run([...pair('reordered-list'), '--env', 'prod']);
    expect(code).toBe(1);
    expect(out).toBe(
      [
        'prod: 1 changed, 0 added, 0 removed',
        '  ~ Deployment shop/api',
        '      ~ spec.template.spec.containers[name=api].env: order A, B, C → C, A, B',
        '      ~ spec.template.spec.containers[name=api].ports: order http, metrics → metrics, http',
        '      ~ spec.template.spec.tolerations: order spot, gpu → gpu, spot',
        '',
      ].join('\n'),
    );
  });

  it('pairs environments of a dist/ layout: added, removed, changed, config-file line diff, Secret values hidden', async () => {
    const { code, out } = await run(pair('mixed'));
    expect(code).toBe(1);
    expect(out).toBe(
      [
        'dev: 0 changed, 0 added, 0 removed',
        'prod: 2 changed, 1 added, 1 removed',
        '  ~ Secret prod/db',
        '      ~ stringData.password: (value changed, not shown)',
        '      + stringData.token: (value added, not shown)',
        '  ~ ConfigMap prod/nginx',
        '      + metadata.labels["app.kubernetes.io/part-of"]: "fastnext"',
        '      ~ data["nginx.conf"]:',
        '          @@ -4,3 +4,3 @@',
        '            keepalive_timeout 65;',
        '      -     upstream api { least_conn; keepalive 32; }',
        '      +     upstream api { least_conn; keepalive 64; }',
        '          }',
        '  + Deployment prod/web',
        '  - Service prod/legacy',
        '',
      ].join('\n'),
    );
  });

  it.each(['text', 'markdown', 'json'])('never prints a Secret value (%s)', async (format) => {
    const { out } = await run([...pair('mixed'), '--format', format]);
    expect(out).toContain('password');
    for (const secret of ['hunter2', 'correct-horse', 's3cr3t']) expect(out).not.toContain(secret);
  });

  it('exits 0 when nothing differs', async () => {
    const dir = path.join(FIXTURES, 'mixed', 'base');
    expect(await run(['--base-dir', dir, '--head-dir', dir])).toEqual({
      code: 0,
      out: 'dev: 0 changed, 0 added, 0 removed\nprod: 0 changed, 0 added, 0 removed\n',
      err: '',
    });
  });

  it('markdown has a summary per environment, a diff block and the capacity table', async () => {
    const { out } = await run([...pair('mixed'), '--format', 'markdown', '--env', 'prod']);
    expect(out).toContain('- **prod: 2 changed, 1 added, 1 removed**');
    expect(out).toContain('```diff\n~ Secret prod/db\n~     stringData.password: (value changed, not shown)\n');
    expect(out).toContain(
      '| at HPA minimum | 0 → 2 (+2) | 0 → 0.5 (+0.5) | 0 → 2 (+2) | 0 MiB → 512 MiB (+512 MiB) | 0 MiB → 1 GiB (+1 GiB) | 0 MiB |',
    );
  });

  it('json has counts, object refs and changes', async () => {
    const json = JSON.parse((await run([...pair('mixed'), '--format', 'json', '--env', 'prod'])).out);
    expect(json.environments[0].summary).toEqual({ changed: 2, added: 1, removed: 1, immutable: 0 });
    expect(json.environments[0].added).toEqual([
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'prod', name: 'web' },
    ]);
    expect(json.environments[0].changed[0].changes).toEqual([
      { path: 'stringData.password', kind: 'changed', redacted: true },
      { path: 'stringData.token', kind: 'added', redacted: true },
    ]);
  });

  it('fails when --format is unknown (exit 2)', async () => {
    expect(await run([...pair('mixed'), '--format', 'yaml'])).toEqual({
      code: 2,
      out: '',
      err: "diff: --format 'yaml' is not one of text, markdown, json\n",
    });
  });

  it('pairs two flat directories as one environment without --env', async () => {
    const { code, out } = await run(pair('reordered-list'));
    expect(code).toBe(1);
    expect(out).toMatch(/^manifests: 1 changed, 0 added, 0 removed\n/);
  });

  it('fails when a flat directory is compared with the synthesized tree and --env is missing (exit 2)', async () => {
    const dir = path.join(FIXTURES, 'reordered-list', 'base');
    expect(await run(['--base-dir', dir])).toEqual({
      code: 2,
      out: '',
      err: `diff: '${dir}' holds the YAML of one environment; name it with --env <name>\n`,
    });
  });

  it('fails when the base directory does not exist (exit 2)', async () => {
    const { code, err } = await run([
      '--base-dir',
      '/nonexistent/dist',
      '--head-dir',
      path.join(FIXTURES, 'mixed', 'head'),
    ]);
    expect(code).toBe(2);
    expect(err).toBe("diff: '/nonexistent/dist' is not a directory\n");
  });
});

describe('npm run diff against a git ref', () => {
  const worktrees = () =>
    execFileSync('git', ['worktree', 'list', '--porcelain'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.startsWith('worktree ')).length;

  it('synthesizes HEAD in a temporary worktree and removes it afterwards', async () => {
    const before = worktrees();
    const { code, out, err } = await run(['--base', 'HEAD', '--env', 'dev']);
    // Other work in progress may or may not change dev: either answer is a valid diff.
    expect([0, 1]).toContain(code);
    expect(err).toBe('');
    expect(out).toMatch(/^dev: \d+ changed, \d+ added, \d+ removed\n/);
    expect(worktrees()).toBe(before);
  });

  it('fails when the base predates stacks/synth.ts (exit 2) and still removes the worktree', async () => {
    const before = worktrees();
    const first = execFileSync('git', ['rev-list', '--max-parents=0', 'HEAD'], { encoding: 'utf8' }).trim();
    const { code, err } = await run(['--base', first, '--env', 'dev']);
    expect(code).toBe(2);
    expect(err).toContain(
      'the base has no stacks/synth.ts, so it cannot be synthesized; diff against a dist/ folder with --base-dir instead',
    );
    expect(worktrees()).toBe(before);
  });

  it('fails when the ref does not exist (exit 2)', async () => {
    const { code, err } = await run(['--base', 'no-such-branch', '--env', 'dev']);
    expect(code).toBe(2);
    expect(err).toBe(
      `diff: 'no-such-branch' is not a commit of the git repository at ${process.cwd()} (try origin/main, HEAD~1 or a commit id)\n`,
    );
  });
});

describe('diff building blocks', () => {
  it('matches unnamed object lists by content when only their order changed', () => {
    const obj = (rules: unknown[]) => ({ apiVersion: 'v1', kind: 'X', metadata: { name: 'x' }, spec: { rules } });
    const d = diffEnvironment([obj([{ a: 1 }, { b: 2 }])], [obj([{ b: 2 }, { a: 1 }])]);
    expect(d.changed[0].changes).toEqual([{ path: 'spec.rules', kind: 'reordered', old: [0, 1], new: [1, 0] }]);
  });

  it('pairs objects by apiVersion too: a version bump is a remove and an add', () => {
    const hpa = (apiVersion: string) => ({
      apiVersion,
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'api', namespace: 'n' },
    });
    const d = diffEnvironment([hpa('autoscaling/v2beta2')], [hpa('autoscaling/v2')]);
    expect([d.added.length, d.removed.length, d.changed.length]).toEqual([1, 1, 0]);
  });

  it('line diff prints hunks with one line of context', () => {
    expect(lineDiff('a\nb\nc\nd\ne\nf', 'a\nb\nC\nd\ne\nf\ng')).toEqual([
      '@@ -2,3 +2,3 @@',
      ' b',
      '-c',
      '+C',
      ' d',
      '@@ -6,1 +6,2 @@',
      ' f',
      '+g',
    ]);
  });
});
