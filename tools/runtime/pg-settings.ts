/**
 * `npm run pg-settings`: writes constructs/postgres/pg15-settings.json, the `pg_settings.context`
 * of every server parameter of a real PostgreSQL 15 running prod's shipped patroni.yml (one
 * Patroni member on loopback, so the parameters of pg_stat_statements, which it preloads, are
 * there too). The constructs read it to refuse unknown or read-only parameters, and the docs and
 * `npm run diff` say from it whether a change applies by reload or needs a restart.
 * test/patroni-reconfigure.test.ts fails when the file differs from a live member's pg_settings.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';
import { type PatroniLaunch, startPatroni } from './launcher/patroni';
import type { Endpoint } from './launcher/processes';

export const PG_SETTINGS_FILE = join(__dirname, '..', '..', 'constructs', 'postgres', 'pg15-settings.json');

/** `name -> context` of every row of the member's pg_settings, sorted by name. */
export async function liveSettingContexts(pg: PatroniLaunch, member: Endpoint): Promise<Record<string, string>> {
  const rows = await pg.query<{ name: string; context: string }>(
    member,
    'SELECT name, context FROM pg_settings ORDER BY name COLLATE "C"',
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.context]));
}

/** The file's text: JSON, two-space indented (as Prettier leaves it). */
export function renderSettingsFile(majorVersion: number, contexts: Record<string, string>): string {
  const doc = {
    generatedBy: 'npm run pg-settings (tools/runtime/pg-settings.ts): do not edit',
    source: `pg_settings of PostgreSQL ${majorVersion} running the shipped patroni.yml (pg_stat_statements preloaded)`,
    majorVersion,
    contexts,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export async function main(): Promise<number> {
  const pg = await startPatroni(synthObjects(loadEnvironment('prod')), { members: 1 });
  try {
    const [{ v }] = await pg.query<{ v: string }>(pg.members[0], "SELECT current_setting('server_version_num') AS v");
    const contexts = await liveSettingContexts(pg, pg.members[0]);
    writeFileSync(PG_SETTINGS_FILE, renderSettingsFile(Math.floor(Number(v) / 10000), contexts));
    console.log(`${PG_SETTINGS_FILE}: ${Object.keys(contexts).length} parameters of PostgreSQL ${v}`);
    return 0;
  } finally {
    await pg.stop();
  }
}
