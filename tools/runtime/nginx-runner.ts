/**
 * Runs the shipped nginx.conf on Debian's nginx, on loopback. Only addresses
 * and paths are substituted: the upstream's DNS server line becomes one
 * `server` line per loopback backend (same parameters, minus `resolve`, which
 * nginx < 1.27.3 lacks), listen ports become free loopback ports, the
 * resolver becomes 127.0.0.1, and the scratch / TLS paths become temp dirs.
 * One directive is translated for the nginx that runs it: the conf is rendered
 * for the shipped image (1.28), whose `http2 on;` nginx < 1.25.1 (Debian 12's
 * 1.22) does not know; there it becomes the `http2` parameter of the same
 * server's `listen ... ssl` line, which means the same thing.
 * Used by the tests and by the local twin.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { EDGE_PATHS, EDGE_PORTS } from '../../constructs/edge/nginx-conf';
import type { KubeObject } from '../k8s/objects';
import { forNginx } from './nginx-dialect';
import { writeSecretVolume } from './secret-volume';
import {
  type Endpoint,
  freePort,
  makeTempDir,
  portOpen,
  removeDir,
  spawnServer,
  stopGroup,
  waitFor,
} from './launcher/processes';

export type { Endpoint };

export const NGINX_BIN = '/usr/sbin/nginx';

/** The edge's nginx.conf as synthesized: the `nginx.conf` key of the `edge-nginx-conf` ConfigMap. */
export function shippedNginxConf(objects: readonly KubeObject[]): string {
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'edge-nginx-conf');
  const conf = (cm?.data as Record<string, string> | undefined)?.['nginx.conf'];
  if (!conf) throw new Error("the synthesized objects have no ConfigMap 'edge-nginx-conf' with an nginx.conf");
  return conf;
}

export interface NginxOptions {
  /** The nginx.conf exactly as shipped (e.g. from the edge ConfigMap). */
  readonly nginxConf: string;
  /** Loopback backends that replace the API headless Service. */
  readonly upstreams: readonly Endpoint[];
  /**
   * PEM certificate and key, when the conf terminates TLS: written as the kubelet writes
   * a Secret volume (files behind an atomically swapped `..data` symlink).
   */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Listen ports to reuse (a restarted edge container keeps its pod's). @default free ports */
  readonly ports?: Readonly<Record<'http' | 'https' | 'status', number>>;
}

export interface RunningNginx {
  readonly http: Endpoint;
  readonly https?: Endpoint;
  readonly status: Endpoint;
  /** The conf nginx actually runs (the shipped one after substitution). */
  readonly conf: string;
  readonly dir: string;
  /** Where the TLS Secret volume is (what the conf's EDGE_PATHS.tls became). */
  readonly tlsDir: string;
  /** Where nginx's master writes its pid (what the conf's pid path became). */
  readonly pidFile: string;
  /** nginx's error and access log (JSON lines). */
  readonly logPath: string;
  readonly pid: number;
  /** Resolves when the nginx master has exited. */
  readonly exited: Promise<number | null>;
  readonly ports: Readonly<Record<'http' | 'https' | 'status', number>>;
  /** Rewrites the upstream list and reloads nginx gracefully (HUP). */
  reload(upstreams: readonly Endpoint[]): Promise<void>;
  /**
   * Writes out the access-log lines the workers hold (the shipped conf buffers them up to a
   * second): USR1 reopens the logs, which flushes the buffers. Resolves once the log stopped growing.
   */
  flushLogs(): Promise<void>;
  stop(): Promise<void>;
}

const UPSTREAM_SERVER = /^(\s*)server (\S+):(\d+) resolve (.*);$/m;

/** Applies the address/path substitutions to the shipped conf. */
export function substitute(
  conf: string,
  o: { upstreams: readonly Endpoint[]; ports: Record<'http' | 'https' | 'status', number>; dir: string },
): string {
  const m = UPSTREAM_SERVER.exec(conf);
  if (!m) throw new Error('nginx.conf has no "server <host>:<port> resolve ...;" upstream line to point at loopback');
  const [, indent, , , params] = m;
  // No endpoint ready: what nginx sees when the headless Service resolves to nothing, no live
  // upstream (502). nginx needs one server line, so a placeholder marked down stands in.
  const servers = o.upstreams.length
    ? o.upstreams.map((u) => `${indent}server ${u.host}:${u.port} ${params};`).join('\n')
    : `${indent}server 127.0.0.1:9 down;`;
  let out = conf.replace(UPSTREAM_SERVER, servers);
  out = out.replace(/^(\s*)resolver \S+ /m, '$1resolver 127.0.0.1 ');
  out = out.replace(new RegExp(`listen ${EDGE_PORTS.http}\\b`), `listen 127.0.0.1:${o.ports.http}`);
  out = out.replace(new RegExp(`listen ${EDGE_PORTS.https}\\b`), `listen 127.0.0.1:${o.ports.https}`);
  out = out.replace(new RegExp(`listen ${EDGE_PORTS.status}\\b`), `listen 127.0.0.1:${o.ports.status}`);
  return forNginx(substitutePaths(out, o.dir), nginxVersion());
}

/**
 * The scratch and TLS paths of a shipped edge file (nginx.conf, the cert-reload script)
 * moved under `dir`, where startNginx puts them.
 */
export function substitutePaths(text: string, dir: string): string {
  return text
    .split(EDGE_PATHS.scratch)
    .join(path.join(dir, 'scratch'))
    .split(EDGE_PATHS.tls)
    .join(path.join(dir, 'tls'));
}

let version: readonly number[] | undefined;

/** Version of the nginx the runner starts, e.g. [1, 22, 1]. */
export function nginxVersion(): readonly number[] {
  if (!version) {
    const out = spawnSync(NGINX_BIN, ['-v'], { encoding: 'utf8' });
    const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(`${out.stderr}${out.stdout}`);
    if (!m) throw new Error(`cannot read the version of ${NGINX_BIN}: ${out.stderr || out.error?.message}`);
    version = m.slice(1, 4).map(Number);
  }
  return version;
}

/** `nginx -t` on a conf file; returns the combined output, throws with it on failure. */
export function testConf(confPath: string, prefix: string): string {
  // The conf logs to /dev/stdout and /dev/stderr; those cannot be opened when
  // they are the sockets Node gives a child, so they point at a plain file.
  const logPath = path.join(prefix, 'nginx-t.log');
  const fd = fs.openSync(logPath, 'w');
  let status: number | null;
  try {
    status = spawnSync(NGINX_BIN, ['-t', '-p', prefix, '-c', confPath, '-e', 'stderr'], {
      stdio: ['ignore', fd, fd],
    }).status;
  } finally {
    fs.closeSync(fd);
  }
  const output = fs.readFileSync(logPath, 'utf8');
  if (status !== 0) throw new Error(`nginx -t failed:\n${output}`);
  return output;
}

/**
 * `testConf` without blocking the caller's event loop: the twin reloads nginx on every rotation
 * change while its Service stand-ins and probes run on the same thread.
 */
export async function testConfAsync(confPath: string, prefix: string): Promise<string> {
  const logPath = path.join(prefix, 'nginx-t.log');
  const fd = fs.openSync(logPath, 'w');
  let status: number | null;
  try {
    status = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(NGINX_BIN, ['-t', '-p', prefix, '-c', confPath, '-e', 'stderr'], {
        stdio: ['ignore', fd, fd],
      });
      child.once('error', reject);
      child.once('exit', (code) => resolve(code));
    });
  } finally {
    fs.closeSync(fd);
  }
  const output = fs.readFileSync(logPath, 'utf8');
  if (status !== 0) throw new Error(`nginx -t failed:\n${output}`);
  return output;
}

/** Starts nginx in the foreground with the substituted conf; resolves when it listens. */
export async function startNginx(opts: NginxOptions): Promise<RunningNginx> {
  // Registered with the launcher: removed (and its processes killed) even if the caller never stops us.
  const dir = makeTempDir('fastnext-nginx-');
  // Workers run as an unprivileged user when we are root: let them write scratch files.
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'scratch'), { mode: 0o777 });
  fs.chmodSync(path.join(dir, 'scratch'), 0o777);
  const tlsDir = path.join(dir, 'tls');
  if (opts.tls) writeSecretVolume(tlsDir, { 'tls.crt': opts.tls.cert, 'tls.key': opts.tls.key });
  const host = '127.0.0.1';
  const ports = opts.ports ?? {
    http: await freePort(host),
    https: await freePort(host),
    status: await freePort(host),
  };
  const confPath = path.join(dir, 'nginx.conf');
  const write = (upstreams: readonly Endpoint[]) => {
    const conf = substitute(opts.nginxConf, { upstreams, ports, dir });
    fs.writeFileSync(confPath, conf);
    return conf;
  };
  let conf = write(opts.upstreams);
  testConf(confPath, dir);
  const logPath = path.join(dir, 'nginx.log');
  const proc = spawnServer(NGINX_BIN, ['-p', dir, '-c', confPath, '-e', 'stderr', '-g', 'daemon off;'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    logFile: logPath,
  });
  const stop = async () => {
    await stopGroup(proc, 'SIGTERM', 3000);
    removeDir(dir);
  };
  const http = { host, port: ports.http };
  try {
    await waitFor(`nginx listening on ${host}:${http.port}`, () => portOpen(http), 15000, proc.log, proc);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    http,
    https: opts.tls ? { host, port: ports.https } : undefined,
    status: { host, port: ports.status },
    get conf() {
      return conf;
    },
    dir,
    tlsDir,
    pidFile: path.join(dir, 'scratch', 'nginx.pid'),
    logPath,
    pid: proc.pid,
    exited: proc.exited,
    ports,
    async reload(upstreams) {
      conf = write(upstreams);
      await testConfAsync(confPath, dir);
      process.kill(proc.pid, 'SIGHUP');
      // Old workers finish their requests; new ones start within a few ms.
      await new Promise((r) => setTimeout(r, 300));
    },
    async flushLogs() {
      process.kill(proc.pid, 'SIGUSR1');
      let size = -1;
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const now = fs.statSync(logPath).size;
        if (now === size) return;
        size = now;
      }
    },
    stop,
  };
}
