/**
 * Alertmanager on loopback, from the synthesized objects: the config Secret's
 * alertmanager.yml byte for byte, the StatefulSet's args with only paths and
 * addresses substituted (config and storage paths, listen and mesh addresses, each
 * replica's peer address), and the receivers' Secrets as files under a local
 * directory that stands in for their mount. `AlertSink` is a loopback HTTP receiver
 * that records every notification with the time it arrived.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ALERTMANAGER_SECRETS_DIR } from '../../constructs/monitoring/alerting';
import {
  ALERTMANAGER_CONFIG_DIR,
  ALERTMANAGER_CONFIG_FILE,
  ALERTMANAGER_MESH_PORT,
  ALERTMANAGER_PORT,
} from '../../constructs/monitoring/alertmanager';
import type { KubeObject } from '../k8s/objects';
import { freePort, makeTempDir, type Proc, removeDir, spawnServer, stopGroup, waitFor } from './launcher/processes';

const ROOT = join(__dirname, '..', '..');
/** Debian 13's Alertmanager 0.28.1, the pinned image's version (tools/install-servers.sh unpacks it). */
export const ALERTMANAGER_BIN = join(ROOT, '.cache', 'alertmanager', 'usr', 'bin', 'prometheus-alertmanager');
export const AMTOOL_BIN = join(ROOT, '.cache', 'alertmanager', 'usr', 'bin', 'amtool');

const HOST = '127.0.0.1';

interface StatefulSetLike {
  metadata: { name: string };
  spec: { replicas?: number; template: { spec: { containers: { name: string; args?: string[] }[] } } };
}

/** The alertmanager StatefulSet and the alertmanager.yml of its config Secret. */
export function alertmanagerOf(
  objects: readonly KubeObject[],
  name = 'alertmanager',
): { statefulSet: StatefulSetLike; config: string } {
  const sts = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === name) as unknown as
    StatefulSetLike | undefined;
  const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === `${name}-config`);
  const config = (secret?.stringData as Record<string, string> | undefined)?.[ALERTMANAGER_CONFIG_FILE];
  if (!sts || !config) throw new Error(`no StatefulSet '${name}' with a Secret '${name}-config' among the objects`);
  return { statefulSet: sts, config };
}

/** A replica's addresses on loopback. */
export interface ReplicaPorts {
  readonly web: number;
  readonly mesh: number;
}

/**
 * The container's args for replica `i` on loopback: paths and addresses substituted,
 * every `--cluster.peer` pointed at the loopback mesh port of the replica it names.
 */
export function localArgs(
  args: readonly string[],
  local: { configFile: string; storage: string; ports: readonly ReplicaPorts[]; replica: number; statefulSet: string },
): string[] {
  const me = local.ports[local.replica];
  return args.map((a) => {
    if (a.startsWith('--config.file=')) return `--config.file=${local.configFile}`;
    if (a.startsWith('--storage.path=')) return `--storage.path=${local.storage}`;
    if (a === `--web.listen-address=:${ALERTMANAGER_PORT}`) return `--web.listen-address=${HOST}:${me.web}`;
    if (a === `--cluster.listen-address=:${ALERTMANAGER_MESH_PORT}`)
      return `--cluster.listen-address=${HOST}:${me.mesh}`;
    if (a.startsWith('--cluster.advertise-address=')) return `--cluster.advertise-address=${HOST}:${me.mesh}`;
    const peer = new RegExp(`^--cluster\\.peer=${local.statefulSet}-(\\d+)\\.[^:]+:${ALERTMANAGER_MESH_PORT}$`).exec(a);
    if (peer) return `--cluster.peer=${HOST}:${local.ports[Number(peer[1])].mesh}`;
    if (a.includes(ALERTMANAGER_CONFIG_DIR) || /=:\d+$/.test(a)) throw new Error(`localArgs: unexpected arg ${a}`);
    return a;
  });
}

export interface RunningAlertmanagers {
  /** Base URL of each replica. */
  readonly urls: readonly string[];
  readonly ports: readonly ReplicaPorts[];
  /** Where the receivers' Secrets are (`<dir>/<secret>/<key>`). */
  readonly secretsDir: string;
  /** alertmanager.yml as run: the Secret's bytes with only the Secret mount path substituted. */
  readonly config: string;
  readonly procs: readonly Proc[];
  log(i: number): string;
  stop(): Promise<void>;
}

/**
 * Starts every replica of the synthesized Alertmanager (or `replicas` of them) and waits
 * until each is ready and, when clustered, sees all its peers. `secrets` are written as the
 * receivers' Secret files: `{ 'alertmanager-slack/api-url': 'http://...' }`.
 */
export async function startAlertmanagers(
  objects: readonly KubeObject[],
  opts: { secrets?: Readonly<Record<string, string>>; replicas?: number } = {},
): Promise<RunningAlertmanagers> {
  const { statefulSet, config: shipped } = alertmanagerOf(objects);
  const container = statefulSet.spec.template.spec.containers.find((c) => c.name === 'alertmanager')!;
  const replicas = opts.replicas ?? statefulSet.spec.replicas ?? 1;
  const dir = makeTempDir('fastnext-alertmanager-');
  const secretsDir = join(dir, 'secrets');
  for (const [path, value] of Object.entries(opts.secrets ?? {})) {
    mkdirSync(join(secretsDir, path, '..'), { recursive: true });
    writeFileSync(join(secretsDir, path), value, { mode: 0o600 });
  }
  const config = shipped.split(`${ALERTMANAGER_SECRETS_DIR}/`).join(`${secretsDir}/`);
  const configFile = join(dir, ALERTMANAGER_CONFIG_FILE);
  writeFileSync(configFile, config);
  const ports: ReplicaPorts[] = [];
  for (let i = 0; i < replicas; i++) ports.push({ web: await freePort(HOST), mesh: await freePort(HOST) });
  const procs: Proc[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => stopGroup(p, 'SIGTERM', 5000)));
    removeDir(dir);
  };
  try {
    for (let i = 0; i < replicas; i++) {
      const storage = join(dir, `data-${i}`);
      mkdirSync(storage);
      const args = localArgs(container.args ?? [], {
        configFile,
        storage,
        ports,
        replica: i,
        statefulSet: statefulSet.metadata.name,
      });
      procs.push(
        spawnServer(ALERTMANAGER_BIN, args, {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          logFile: join(dir, `alertmanager-${i}.log`),
        }),
      );
    }
    const urls = ports.map((p) => `http://${HOST}:${p.web}`);
    for (const [i, url] of urls.entries()) {
      await waitFor(
        `alertmanager-${i} ready`,
        async () => (await fetch(`${url}/-/ready`)).ok,
        30000,
        procs[i].log,
        procs[i],
      );
      if (replicas > 1) {
        await waitFor(
          `alertmanager-${i} sees ${replicas} cluster members`,
          async () => {
            const status = (await (await fetch(`${url}/api/v2/status`)).json()) as { cluster?: { peers?: unknown[] } };
            return (status.cluster?.peers?.length ?? 0) === replicas;
          },
          30000,
          procs[i].log,
          procs[i],
        );
      }
    }
    return { urls, ports, secretsDir, config, procs, log: (i) => procs[i].log(), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One notification as the sink received it. */
export interface Notification {
  /** The request path: the receivers' URL files point at `/<receiver name>`. */
  readonly path: string;
  readonly receivedAt: number;
  readonly body: Record<string, unknown>;
}

/** A loopback HTTP endpoint standing in for every receiver (webhook and Slack payloads alike). */
export class AlertSink {
  readonly received: Notification[] = [];
  private readonly server: Server;
  private readonly listeners = new Set<(n: Notification) => void>();

  constructor() {
    this.server = createServer((req, res) => {
      void this.read(req).then((body) => {
        const n: Notification = { path: req.url ?? '/', receivedAt: Date.now(), body };
        this.received.push(n);
        for (const l of this.listeners) l(n);
        // What Slack's incoming webhooks answer (Alertmanager checks it); webhook receivers ignore the body.
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      });
    });
  }

  private async read(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return {};
    }
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, HOST, resolve));
    return `http://${HOST}:${(this.server.address() as AddressInfo).port}`;
  }

  /** Calls `listener` for every notification from now on; returns the unsubscribe function. */
  onNotification(listener: (n: Notification) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first notification (already received or to come) that `match` accepts. */
  next(match: (n: Notification) => boolean, timeoutMs: number): Promise<Notification> {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(
          new Error(
            `no matching notification within ${timeoutMs} ms; got ${this.received.map((n) => n.path).join(', ')}`,
          ),
        );
      }, timeoutMs);
      const off = this.onNotification((n) => {
        if (!match(n)) return;
        clearTimeout(timer);
        off();
        resolve(n);
      });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * The receiver Secret files that point every URL-reading receiver (webhook `url_file`, Slack
 * `api_url_file`) at `sinkUrl/<receiver>`, read from the shipped config. Other credentials
 * (a PagerDuty key, an SMTP password) are left out: those receivers then fail locally.
 */
export function sinkSecrets(config: string, sinkUrl: string): Record<string, string> {
  type Receiver = {
    name: string;
    webhook_configs?: { url_file?: string }[];
    slack_configs?: { api_url_file?: string }[];
  };
  const out: Record<string, string> = {};
  for (const r of (parse(config) as { receivers: Receiver[] }).receivers) {
    const files = [
      ...(r.webhook_configs ?? []).map((c) => c.url_file),
      ...(r.slack_configs ?? []).map((c) => c.api_url_file),
    ];
    for (const f of files) {
      if (f?.startsWith(`${ALERTMANAGER_SECRETS_DIR}/`))
        out[f.slice(ALERTMANAGER_SECRETS_DIR.length + 1)] = `${sinkUrl}/${r.name}`;
    }
  }
  return out;
}
