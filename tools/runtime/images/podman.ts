/**
 * The podman invocations this machine needs (DESIGN.md, "Facts about this machine"):
 * runc rather than Debian 12's crun (which refuses hybrid cgroups), ulimits below the
 * hard limits (podman's defaults exceed them) and the host network (no CNI setup here;
 * the test servers listen on loopback).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Global flags of every podman call: `podman build` has no --runtime of its own, so it goes first. */
const GLOBAL = ['--runtime', 'runc'];

/** Flags every `podman run` and `podman build` here gets. */
export const PODMAN_RUN_FLAGS: readonly string[] = [
  '--ulimit',
  'nofile=4096:4096',
  '--ulimit',
  'nproc=4096:4096',
  '--network=host',
];

/** Runs podman to completion; rejects with its stderr on a non-zero exit. */
export function podman(args: readonly string[], opts: { input?: string; maxBuffer?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'podman',
      [...GLOBAL, ...args],
      { maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`podman ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs podman with its output streamed to `onLine` (long builds); rejects on a non-zero exit. */
export function podmanStreamed(args: readonly string[], onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', [...GLOBAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const feed = (d: Buffer) => {
      const text = d.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) onLine(line);
    };
    child.stdout.on('data', feed);
    child.stderr.on('data', feed);
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`podman ${args.slice(0, 2).join(' ')} exited ${code}:\n${tail}`)),
    );
  });
}

export async function imageExists(ref: string): Promise<boolean> {
  try {
    await podman(['image', 'exists', ref]);
    return true;
  } catch {
    return false;
  }
}

/** Bytes of an image's uncompressed layers. */
export async function imageSize(ref: string): Promise<number> {
  const [info] = JSON.parse(await podman(['image', 'inspect', ref])) as { Size: number }[];
  return info.Size;
}

/** Layer digests (bottom first) of an image. */
export async function imageLayers(ref: string): Promise<string[]> {
  const [info] = JSON.parse(await podman(['image', 'inspect', ref])) as { RootFS: { Layers: string[] } }[];
  return info.RootFS.Layers;
}

/** Every path in an image's filesystem (from `podman export` of a container never started). */
export async function imagePaths(ref: string): Promise<string[]> {
  const id = (await podman(['create', ref, 'true'])).trim();
  // podman export cannot write to a pipe (it opens /dev/stdout): a file it is.
  const dir = mkdtempSync(join(tmpdir(), 'fastnext-export-'));
  try {
    const tar = join(dir, 'fs.tar');
    await podman(['export', '-o', tar, id]);
    const listing = execFileSync('tar', ['-tf', tar], { maxBuffer: 256 * 1024 * 1024 }).toString();
    return listing
      .split('\n')
      .filter(Boolean)
      .map((p) => '/' + p.replace(/^\.?\//, ''));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await podman(['rm', '-f', id]);
  }
}

export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** The argv of `podman <args>` with the global flags (for callers that spawn it themselves). */
export const podmanArgv = (args: readonly string[]): string[] => [...GLOBAL, ...args];
