/**
 * Runs the shipped nginx.conf on Debian's nginx, on loopback. Only addresses
 * and paths are substituted: the upstream's DNS server line becomes one
 * `server` line per loopback backend (same parameters, minus `resolve`, which
 * nginx < 1.27.3 lacks), listen ports become free loopback ports, the
 * resolver becomes 127.0.0.1, and the scratch / TLS paths become temp dirs.
 * Used by the tests and by the local twin.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { EDGE_PATHS, EDGE_PORTS } from '../../constructs/edge/nginx-conf';
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

export interface NginxOptions {
  /** The nginx.conf exactly as shipped (e.g. from the edge ConfigMap). */
  readonly nginxConf: string;
  /** Loopback backends that replace the API headless Service. */
  readonly upstreams: readonly Endpoint[];
  /** PEM certificate and key, when the conf terminates TLS. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

export interface RunningNginx {
  readonly http: Endpoint;
  readonly https?: Endpoint;
  readonly status: Endpoint;
  /** The conf nginx actually runs (the shipped one after substitution). */
  readonly conf: string;
  readonly dir: string;
  /** nginx's error and access log (JSON lines). */
  readonly logPath: string;
  /** Rewrites the upstream list and reloads nginx gracefully (HUP). */
  reload(upstreams: readonly Endpoint[]): Promise<void>;
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
  const servers = o.upstreams.map((u) => `${indent}server ${u.host}:${u.port} ${params};`).join('\n');
  let out = conf.replace(UPSTREAM_SERVER, servers);
  out = out.replace(/^(\s*)resolver \S+ /m, '$1resolver 127.0.0.1 ');
  out = out.replace(new RegExp(`listen ${EDGE_PORTS.http}\\b`), `listen 127.0.0.1:${o.ports.http}`);
  out = out.replace(new RegExp(`listen ${EDGE_PORTS.https}\\b`), `listen 127.0.0.1:${o.ports.https}`);
  out = out.replace(new RegExp(`listen ${EDGE_PORTS.status}\\b`), `listen 127.0.0.1:${o.ports.status}`);
  out = out.split(EDGE_PATHS.scratch).join(path.join(o.dir, 'scratch'));
  out = out.split(EDGE_PATHS.tls).join(path.join(o.dir, 'tls'));
  return out;
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

/** Starts nginx in the foreground with the substituted conf; resolves when it listens. */
export async function startNginx(opts: NginxOptions): Promise<RunningNginx> {
  // Registered with the launcher: removed (and its processes killed) even if the caller never stops us.
  const dir = makeTempDir('fastnext-nginx-');
  // Workers run as an unprivileged user when we are root: let them write scratch files.
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'scratch'), { mode: 0o777 });
  fs.chmodSync(path.join(dir, 'scratch'), 0o777);
  if (opts.tls) {
    fs.mkdirSync(path.join(dir, 'tls'));
    fs.writeFileSync(path.join(dir, 'tls', 'tls.crt'), opts.tls.cert);
    fs.writeFileSync(path.join(dir, 'tls', 'tls.key'), opts.tls.key, { mode: 0o600 });
  }
  const host = '127.0.0.1';
  const ports = { http: await freePort(host), https: await freePort(host), status: await freePort(host) };
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
    await waitFor(`nginx listening on ${host}:${http.port}`, () => portOpen(http), 5000, proc.log, proc);
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
    logPath,
    async reload(upstreams) {
      conf = write(upstreams);
      testConf(confPath, dir);
      process.kill(proc.pid, 'SIGHUP');
      // Old workers finish their requests; new ones start within a few ms.
      await new Promise((r) => setTimeout(r, 300));
    },
    stop,
  };
}
