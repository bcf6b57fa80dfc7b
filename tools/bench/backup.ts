/**
 * `npm run bench:backup`: what backups cost and what they save, on real servers (prod's
 * shipped Patroni, pgBackRest and restore files on loopback, a posix directory as the
 * repository; see tools/runtime/launcher/pgbackrest.ts).
 *
 * 1. Restore time of a ~1 GB database: generate it, take a full backup (backup.sh), write
 *    more rows after it, then build a new cluster from the repository with `postgres.restore`
 *    (Patroni's bootstrap method) and time pgBackRest's restore, WAL replay and the first write.
 * 2. RPO with archive WAL only (no replica survives: the leader and its volume are lost): a
 *    writer commits a numbered row every 100 ms; the leader is SIGKILLed at a chosen moment;
 *    a cluster restored to the latest point shows the last row the archive kept. The RPO is
 *    the time between that row's commit and the last acknowledged one (default archive_timeout).
 *
 * Prints a Markdown section (written to bench/backup-results.md by hand, with the date).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';
import { type PatroniLaunch, startPatroni } from '../runtime/launcher';
import { chownTree, makeTempDir, osUser, removeDir, sleep } from '../runtime/launcher/processes';

const GB_ROWS = Number(process.env.BENCH_BACKUP_ROWS ?? 6_500_000);
const RPO_KILL_AFTER_S = (process.env.BENCH_RPO_KILL_AFTER ?? '75,100,130').split(',').map(Number);
const CIPHER = 'bench-cipher-pass-0123456789';

const pgUser = osUser('postgres');
const prodObjects = () => synthObjects(loadEnvironment('prod'));
const restoreObjects = () => synthObjects(loadEnvironment('prod', { postgres: { restore: { fromBackup: {} } } }));

function copyRepository(from: string, parent: string): string {
  const dir = makeTempDir('bench-repo-copy-', parent);
  execFileSync('cp', ['-a', `${from}/.`, dir]);
  chownTree(dir, pgUser.uid, pgUser.gid);
  return dir;
}

/** pgBackRest's own duration of its restore, from the member's whole log (WAL replay pushes it out of log()'s tail). */
const restoreCommandMs = (launch: PatroniLaunch) =>
  Number(
    /restore command end: completed successfully \((\d+)ms\)/.exec(
      readFileSync(join(launch.dir, 'member-0', 'patroni.0.log'), 'utf8'),
    )?.[1] ?? NaN,
  );

async function restoreTime(root: string): Promise<string[]> {
  const repo = join(root, 'repo-gb');
  const pg = await startPatroni(prodObjects(), {
    members: 1,
    parentDir: root,
    backup: { repositoryDir: repo, cipherPass: CIPHER },
  });
  let lines: string[];
  try {
    let t = Date.now();
    await pg.query(
      pg.primary,
      `CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('x', 100) AS pad FROM generate_series(1, ${GB_ROWS}) g`,
    );
    const generateS = (Date.now() - t) / 1000;
    const [{ size }] = await pg.query<{ size: string }>(
      pg.primary,
      'SELECT pg_database_size(current_database()) AS size',
    );
    t = Date.now();
    const full = await pg.runBackup(0, 'full');
    const fullS = (Date.now() - t) / 1000;
    if (full.code !== 0) throw new Error(`full backup failed:\n${full.output}`);
    const repoBytes = Number(execFileSync('du', ['-sb', repo]).toString().split('\t')[0]);
    // WAL to replay after the backup: ~100 MB of new rows.
    await pg.query(
      pg.primary,
      "INSERT INTO big SELECT g, md5(g::text) || repeat('y', 100) FROM generate_series(1, 600000) g",
    );
    await pg.pgbackrest(0, 'check');
    const copy = copyRepository(repo, root);
    await pg.stop();
    t = Date.now();
    const restored = await startPatroni(restoreObjects(), {
      members: 1,
      parentDir: root,
      backup: { repositoryDir: copy, cipherPass: CIPHER },
    });
    const writableS = (Date.now() - t) / 1000;
    try {
      const [{ n }] = await restored.query<{ n: string }>(restored.primary, 'SELECT count(*) AS n FROM big');
      const pgbr = restoreCommandMs(restored) / 1000;
      lines = [
        `| database size | ${(Number(size) / 1e9).toFixed(2)} GB (${GB_ROWS.toLocaleString('en')} rows generated in ${generateS.toFixed(0)} s) |`,
        `| full backup (backup.sh: stanza-create + backup, lz4, aes-256-cbc, process-max 2) | ${fullS.toFixed(1)} s, repository ${(repoBytes / 1e9).toFixed(2)} GB |`,
        `| pgBackRest restore of the full backup (restore.sh) | ${pgbr.toFixed(1)} s |`,
        `| new cluster writable (Patroni start, restore, replay of ~100 MB WAL, promotion, post_bootstrap) | ${writableS.toFixed(1)} s |`,
        `| rows after the restore | ${Number(n).toLocaleString('en')} (${(GB_ROWS + 600000).toLocaleString('en')} written) |`,
      ];
    } finally {
      await restored.stop();
    }
  } finally {
    await pg.stop();
  }
  return lines;
}

async function rpoTrial(root: string, killAfterS: number): Promise<{ lostS: number; lostRows: number }> {
  const repo = makeTempDir('bench-repo-rpo-', root);
  chownTree(repo, pgUser.uid, pgUser.gid);
  const pg = await startPatroni(prodObjects(), {
    members: 1,
    parentDir: root,
    backup: { repositoryDir: repo, cipherPass: CIPHER },
  });
  const acked: { id: number; at: number }[] = [];
  try {
    await pg.query(
      pg.primary,
      'CREATE TABLE ticks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())',
    );
    const full = await pg.runBackup(0, 'full');
    if (full.code !== 0) throw new Error(`full backup failed:\n${full.output}`);
    const c = await pg.connect(pg.primary, 'superuser');
    const t0 = Date.now();
    let id = 0;
    while (Date.now() - t0 < killAfterS * 1000) {
      id++;
      await c.query('INSERT INTO ticks (id) VALUES ($1)', [id]);
      acked.push({ id, at: Date.now() });
      await sleep(100);
    }
    // The node and its volume are gone: nothing more reaches the archive.
    await pg.killMember(0);
    await c.end().catch(() => undefined);
  } finally {
    await pg.stop();
  }
  const restored = await startPatroni(restoreObjects(), {
    members: 1,
    parentDir: root,
    backup: { repositoryDir: repo, cipherPass: CIPHER },
  });
  try {
    const [{ max }] = await restored.query<{ max: number | null }>(
      restored.primary,
      'SELECT max(id) AS max FROM ticks',
    );
    const kept = max ?? 0;
    const last = acked[acked.length - 1];
    const keptAt = acked.find((a) => a.id === kept)?.at ?? acked[0].at;
    return { lostS: (last.at - keptAt) / 1000, lostRows: last.id - kept };
  } finally {
    await restored.stop();
    removeDir(repo);
  }
}

export async function main(): Promise<number> {
  const root = makeTempDir('fastnext-bench-backup-');
  chownTree(root, pgUser.uid, pgUser.gid);
  try {
    const out = ['| measured | value |', '|---|---|', ...(await restoreTime(root))];
    out.push(
      '',
      '| leader killed after (s) | acknowledged rows lost | seconds of writes lost (RPO) |',
      '|---|---|---|',
    );
    for (const s of RPO_KILL_AFTER_S) {
      const r = await rpoTrial(root, s);
      out.push(`| ${s} | ${r.lostRows} | ${r.lostS.toFixed(1)} |`);
      console.error(`rpo trial ${s} s: ${JSON.stringify(r)}`);
    }
    console.log(out.join('\n'));
    return 0;
  } finally {
    removeDir(root);
  }
}
