/**
 * `npm run image:build`: builds every image the platform ships, from its Dockerfile:
 * service/Dockerfile (the API) and images/<name>/Dockerfile. Each is tagged with the
 * image the synthesized manifests run (`ghcr.io/fastnext/<name>:...`, e.g. the api
 * Deployment's `api.image`). With a container registry reachable the Dockerfiles'
 * pinned upstream bases are used as they are; without one (this machine, CI here)
 * each base ARG is pointed at a local stand-in made from Debian packages (bases.ts).
 * Prints each image's size and the size of what it adds to its runtime base, and
 * fails over an image's budget or when its final stage carries what it must not.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadEnvironment } from '../../../stacks/environments';
import { synthObjects } from '../../../stacks/synth';
import { localBase } from './bases';
import { imageLayers, imagePaths, imageSize, mb, PODMAN_RUN_FLAGS, podmanStreamed } from './podman';

const ROOT = join(__dirname, '..', '..', '..');
const REGISTRY_PROBE = 'https://registry-1.docker.io/v2/';

/** One image the platform ships. */
export interface ImageSource {
  /** `api`, or the folder name under images/. */
  readonly name: string;
  readonly dockerfile: string;
  readonly context: string;
  /** A `<Dockerfile>.dockerignore` beside it, when there is one. */
  readonly ignoreFile?: string;
}

/** What an image may weigh and must not contain. */
export interface ImageBudget {
  /** Whole image, uncompressed. */
  readonly maxMb: number;
  /** What the Dockerfile adds to its last FROM (runtime, dependencies, app). */
  readonly maxAddedMb: number;
  /** Paths (prefixes) the final stage must not contain. */
  readonly forbidden?: readonly string[];
}

/** Top-level packages the lockfile installs only for development (`"dev": true`). */
const devOnlyPackages = Object.entries(
  (JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> })
    .packages,
)
  .filter(([path, p]) => p.dev && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path))
  .map(([path]) => path.slice('node_modules/'.length));

/**
 * Budgets, measured then rounded up. api on the local Debian-made base: 278 MB = 133 MB
 * Debian minbase + 120 MB node + 25 MB production node_modules and dist (what it adds: 145 MB);
 * on debian:bookworm-slim (75 MB) about 220 MB. The dev install would add ~300 MB more.
 * The API's final stage has no npm, no TypeScript sources and no dev dependency.
 */
export const BUDGETS: Readonly<Record<string, ImageBudget>> = {
  api: {
    maxMb: 300,
    maxAddedMb: 160,
    forbidden: [
      '/usr/local/lib/node_modules/npm',
      '/usr/local/bin/npm',
      '/usr/local/bin/npx',
      '/usr/local/bin/corepack',
      '/app/service/src',
      '/app/tsconfig.json',
      ...devOnlyPackages.map((d) => `/app/node_modules/${d}/`),
    ],
  },
  /**
   * postgres on the local base: 521 MB Debian minbase + postgresql-15 (the official
   * postgres:15-bookworm is ~420 MB) + 140 MB Patroni and its Python. Measured 661 MB.
   */
  postgres: { maxMb: 700, maxAddedMb: 160 },
  /** pgbouncer: Debian minbase + pgbouncer 1.18 and what it depends on (postgresql-common's perl). Measured 218 MB. */
  pgbouncer: { maxMb: 250, maxAddedMb: 100 },
};
const DEFAULT_BUDGET: ImageBudget = { maxMb: 600, maxAddedMb: 300 };

/** service/Dockerfile and every images/<name>/Dockerfile. */
export function discoverImages(root = ROOT): ImageSource[] {
  const found: ImageSource[] = [
    {
      name: 'api',
      dockerfile: join(root, 'service', 'Dockerfile'),
      context: root,
      ignoreFile: join(root, 'service', 'Dockerfile.dockerignore'),
    },
  ];
  const images = join(root, 'images');
  if (existsSync(images)) {
    for (const name of readdirSync(images).sort()) {
      const dockerfile = join(images, name, 'Dockerfile');
      if (!existsSync(dockerfile)) continue;
      const ignore = `${dockerfile}.dockerignore`;
      found.push({
        name,
        dockerfile,
        context: join(images, name),
        ignoreFile: existsSync(ignore) ? ignore : undefined,
      });
    }
  }
  return found.map((s) => (s.ignoreFile && !existsSync(s.ignoreFile) ? { ...s, ignoreFile: undefined } : s));
}

/** The `ARG NAME=default` lines whose NAME a FROM uses (the base images), in order. */
export function baseArgs(dockerfile: string): { name: string; image: string }[] {
  const args = new Map<string, string>();
  const used: { name: string; image: string }[] = [];
  for (const line of dockerfile.split('\n')) {
    const arg = /^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)/.exec(line);
    if (arg) args.set(arg[1], arg[2]);
    const from = /^\s*FROM\s+\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/i.exec(line);
    if (from && args.has(from[1]) && !used.some((u) => u.name === from[1])) {
      used.push({ name: from[1], image: args.get(from[1])! });
    }
  }
  return used;
}

/** The last stage's base ARG (what the image runs on). */
function runtimeBaseArg(dockerfile: string): string | undefined {
  const froms = dockerfile.split('\n').filter((l) => /^\s*FROM\s/i.test(l));
  return /^\s*FROM\s+\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/i.exec(froms[froms.length - 1] ?? '')?.[1];
}

/** Every container image of the synthesized dev objects, by repository name's last segment. */
export function manifestTags(env = 'dev'): Map<string, string> {
  const tags = new Map<string, string>();
  const visit = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'image' && typeof x === 'string' && x.startsWith('ghcr.io/fastnext/')) {
          tags.set(x.split(':')[0].split('/').pop()!, x);
        } else visit(x);
      }
    }
  };
  visit(synthObjects(loadEnvironment(env)));
  return tags;
}

/**
 * Every ghcr.io/fastnext/<name> image the manifests run must be built from a Dockerfile of
 * that name (service/Dockerfile is `api`, images/<name>/Dockerfile the others), and every
 * Dockerfile must build an image the manifests run: otherwise CI would build and test one
 * image while the cluster pulls another.
 */
export function imageMismatches(sources: readonly string[], tags: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  for (const [name, tag] of tags) {
    if (!sources.includes(name)) {
      problems.push(
        `the manifests run ${tag}, but no Dockerfile builds '${name}': add images/${name}/Dockerfile or change the image`,
      );
    }
  }
  for (const name of sources) {
    if (!tags.has(name)) {
      problems.push(
        `${name === 'api' ? 'service/Dockerfile' : `images/${name}/Dockerfile`} builds '${name}', but no manifest runs ` +
          `ghcr.io/fastnext/${name}: name the folder after the image the manifests use`,
      );
    }
  }
  return problems;
}

export async function registryReachable(): Promise<boolean> {
  try {
    await fetch(REGISTRY_PROBE, { method: 'HEAD', signal: AbortSignal.timeout(3000) });
    return true;
  } catch {
    return false;
  }
}

export interface BuiltImage {
  readonly name: string;
  readonly tag: string;
  readonly sizeBytes: number;
  /** Bytes above the runtime base (the Dockerfile's own layers in its final stage). */
  readonly addedBytes: number;
  readonly buildMs: number;
  readonly problems: string[];
}

/** Builds one image with the given base substitutions and checks it against its budget. */
export async function buildImage(
  src: ImageSource,
  tag: string,
  bases: ReadonlyMap<string, string>,
  log: (line: string) => void,
): Promise<BuiltImage> {
  const t0 = Date.now();
  const text = readFileSync(src.dockerfile, 'utf8');
  const buildArgs = [...bases].flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  log(`${src.name}: podman build -f ${relative(ROOT, src.dockerfile)} -t ${tag} ${buildArgs.join(' ')}`);
  await podmanStreamed(
    [
      'build',
      ...PODMAN_RUN_FLAGS,
      ...buildArgs,
      ...(src.ignoreFile ? ['--ignorefile', src.ignoreFile] : []),
      '--layers',
      // The compile stage and the production-dependencies stage are independent: run them together.
      '--jobs=2',
      '-f',
      src.dockerfile,
      '-t',
      tag,
      src.context,
    ],
    (l) => log(`  ${l}`),
  );
  const buildMs = Date.now() - t0;
  const sizeBytes = await imageSize(tag);
  const runtimeArg = runtimeBaseArg(text);
  const runtimeBase = (runtimeArg && bases.get(runtimeArg)) ?? baseArgs(text).find((b) => b.name === runtimeArg)?.image;
  let addedBytes = sizeBytes;
  if (runtimeBase) {
    const baseLayers = new Set(await imageLayers(runtimeBase));
    const own = (await imageLayers(tag)).filter((l) => !baseLayers.has(l));
    addedBytes = own.length ? sizeBytes - (await imageSize(runtimeBase)) : 0;
  }
  const budget = BUDGETS[src.name] ?? DEFAULT_BUDGET;
  const problems: string[] = [];
  if (sizeBytes > budget.maxMb * 1e6) problems.push(`image ${mb(sizeBytes)} is over its budget of ${budget.maxMb} MB`);
  if (addedBytes > budget.maxAddedMb * 1e6) {
    problems.push(`the layers above the base weigh ${mb(addedBytes)}, over the budget of ${budget.maxAddedMb} MB`);
  }
  if (budget.forbidden?.length) {
    const paths = await imagePaths(tag);
    for (const f of budget.forbidden) {
      const hit = paths.find((p) => p === f || p.startsWith(f.endsWith('/') ? f : `${f}/`) || `${p}/` === f);
      if (hit) problems.push(`the final stage contains ${hit} (must not ship ${f})`);
    }
  }
  return { name: src.name, tag, sizeBytes, addedBytes, buildMs, problems };
}

export interface BuildReport {
  readonly images: BuiltImage[];
  readonly mode: 'upstream' | 'local';
  /** Milliseconds spent making or finding the local bases (about 1 s when all are reused). */
  readonly baseMs: number;
  readonly totalMs: number;
}

/** Builds every image; `only` limits it to some names. */
export async function buildAll(
  opts: { only?: readonly string[]; mode?: 'upstream' | 'local'; log?: (line: string) => void } = {},
): Promise<BuildReport> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const t0 = Date.now();
  const mode = opts.mode ?? ((await registryReachable()) ? 'upstream' : 'local');
  log(
    mode === 'upstream'
      ? 'a registry is reachable: building on the pinned upstream bases'
      : `no registry reachable (${REGISTRY_PROBE}): building on local bases made from Debian packages`,
  );
  const sources = discoverImages().filter((s) => !opts.only || opts.only.includes(s.name));
  if (opts.only) {
    const unknown = opts.only.filter((n) => !sources.some((s) => s.name === n));
    if (unknown.length)
      throw new Error(
        `no image named ${unknown.join(', ')} (known: ${discoverImages()
          .map((s) => s.name)
          .join(', ')})`,
      );
  }
  const tags = new Map(plannedImages().map((p) => [p.name, p.tag]));
  const images: BuiltImage[] = [];
  let baseMs = 0;
  for (const src of sources) {
    const bases = new Map<string, string>();
    if (mode === 'local') {
      for (const b of baseArgs(readFileSync(src.dockerfile, 'utf8'))) {
        // Wall time, parents included (a node base makes its Debian base first); a reuse costs ~1 s.
        const t = Date.now();
        const local = await localBase(b.image, log);
        baseMs += Date.now() - t;
        bases.set(b.name, local.tag);
      }
    }
    const tag = tags.get(src.name)!;
    images.push(await buildImage(src, tag, bases, log));
  }
  return { images, mode, baseMs, totalMs: Date.now() - t0 };
}

export function renderReport(r: BuildReport): string {
  const rows = r.images.map(
    (i) =>
      `${i.name.padEnd(10)} ${i.tag.padEnd(36)} ${mb(i.sizeBytes).padStart(9)} ${mb(i.addedBytes).padStart(9)}` +
      `  ${(i.buildMs / 1000).toFixed(0).padStart(4)} s  ${i.problems.length ? 'OVER BUDGET' : 'ok'}`,
  );
  return [
    `${'image'.padEnd(10)} ${'tag'.padEnd(36)} ${'size'.padStart(9)} ${'app'.padStart(9)}  build`,
    ...rows,
    `bases: ${r.mode}${r.mode === 'local' ? `, ${(r.baseMs / 1000).toFixed(0)} s to make or reuse them` : ''}; total ${(r.totalMs / 1000).toFixed(0)} s`,
    ...r.images.flatMap((i) => i.problems.map((p) => `${i.name}: ${p}`)),
  ].join('\n');
}

/** What image:build would build: name, Dockerfile and context (relative), tag and repository. */
export function plannedImages(): { name: string; dockerfile: string; context: string; tag: string; image: string }[] {
  const tags = manifestTags();
  const sources = discoverImages();
  const problems = imageMismatches(
    sources.map((s) => s.name),
    tags,
  );
  if (problems.length) throw new Error(problems.join('\n'));
  return sources.map((s) => {
    const tag = tags.get(s.name)!;
    return {
      name: s.name,
      dockerfile: relative(ROOT, s.dockerfile),
      context: relative(ROOT, s.context) || '.',
      tag,
      image: tag.split(':')[0],
    };
  });
}

/** `image:build [-- --only api] [--local | --upstream] | --list | --list-json` */
export async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--list')) {
    for (const p of plannedImages()) console.log(`${p.name} ${p.tag}`);
    return 0;
  }
  if (argv.includes('--list-json')) {
    // `version`: the tag without its repository, for the workflow's docker/metadata-action.
    console.log(JSON.stringify(plannedImages().map((p) => ({ ...p, version: p.tag.slice(p.image.length + 1) }))));
    return 0;
  }
  const i = argv.indexOf('--only');
  const only = i >= 0 ? argv[i + 1]?.split(',') : undefined;
  const mode = argv.includes('--local') ? 'local' : argv.includes('--upstream') ? 'upstream' : undefined;
  try {
    const report = await buildAll({ only, mode });
    console.log(`\n${renderReport(report)}`);
    return report.images.some((x) => x.problems.length) ? 1 : 0;
  } catch (e) {
    console.error(`image:build failed: ${(e as Error).message}`);
    return 1;
  }
}
