/**
 * Database traffic in the clear, in production: any `sslmode=disable` a client is configured
 * with (container env, args, command, or a shipped file), and any pg_hba.conf `host` line that
 * admits a connection (a `hostssl` line requires TLS; `host ... reject` admits nothing). The
 * pg_hba lines are found in every ConfigMap file, as a plain pg_hba.conf or as patroni.yml's
 * `pg_hba` list.
 */
import { containersOf, type KubeObject } from '../../../k8s/objects';
import type { Check, PolicyContext, Violation } from '../types';

/** A pg_hba `host` line (plain or a YAML list item, quoted or not) and its auth method. */
const HBA_HOST = /^\s*(?:-\s*)?['"]?(host\s+\S+\s+\S+\s+\S+\s+(\S+?))['"]?\s*$/;

function plaintextInText(text: string): string[] {
  const out: string[] = [];
  if (/sslmode=disable/.test(text)) out.push('sets sslmode=disable');
  for (const line of text.split('\n')) {
    const m = HBA_HOST.exec(line);
    if (m && m[2] !== 'reject') out.push(`has pg_hba line '${m[1]}', which admits plaintext: use hostssl`);
  }
  return out;
}

export const postgresPlaintext: Check = {
  id: 'postgres-plaintext',
  severity: 'error',
  explanation:
    'In production every connection to PostgreSQL and PgBouncer is TLS: no client with sslmode=disable, no pg_hba host line that admits plaintext.',
  fix: 'Turn postgres.tls on (a Secret with tls.crt/tls.key/ca.crt, or generated), connect with sslmode=verify-full, and write hostssl in pg_hba.',
  run(ctx: PolicyContext): Violation[] {
    const out: Violation[] = [];
    const prod = (o: KubeObject) => ctx.isProduction(o.metadata.namespace);
    for (const cm of ctx.ofKind('ConfigMap').filter(prod)) {
      for (const [key, text] of Object.entries((cm as { data?: Record<string, string> }).data ?? {})) {
        for (const message of plaintextInText(text))
          out.push({ object: cm, path: `data.${key}`, message: `${key} ${message}` });
      }
    }
    for (const w of ctx.workloads.filter((x) => prod(x.object))) {
      for (const { container, path } of containersOf(w)) {
        const strings = [
          ...(container.command ?? []),
          ...(container.args ?? []),
          ...(container.env ?? []).flatMap((e) => (e.value === undefined ? [] : [e.value])),
        ];
        if (strings.some((s) => /sslmode=disable/.test(s))) {
          out.push({ object: w.object, path, message: `container '${container.name}' sets sslmode=disable` });
        }
      }
    }
    return out;
  },
};

export const DATABASE_TLS_CHECKS: Check[] = [postgresPlaintext];
