/**
 * pgBackRest on loopback: the shipped pgbackrest.conf with what the twin must change, and
 * only that (`TWIN_PGBACKREST_CHANGES`, pinned by a test):
 * - the repository: a bucket (s3, gcs, azure) cannot be reached from here, so `repo1-*`
 *   storage options are replaced by a posix directory shared by every member, as the
 *   bucket is shared by every pod; retention and encryption stay as shipped;
 * - the member's paths and port (`pg1-path`, `pg1-port`, `pg1-socket-path`, `lock-path`).
 * Credentials and the cipher pass come from PGBACKREST_* env, as in the pod.
 */

/** Keys of pgbackrest.conf the twin sets; every other line is the shipped one. */
export const TWIN_PGBACKREST_CHANGES = [
  'repo1-type',
  'repo1-path',
  'repo1-s3-*',
  'repo1-gcs-*',
  'repo1-azure-*',
  'repo1-storage-*',
  'pg1-path',
  'pg1-port',
  'pg1-socket-path',
  'lock-path',
] as const;

export interface TwinPgBackRestMember {
  readonly dataDir: string;
  readonly port: number;
  readonly socketDir: string;
  readonly lockPath: string;
  /** The shared posix directory standing in for the repository. */
  readonly repositoryDir: string;
}

const STORAGE_KEY = /^repo1-(s3|gcs|azure|storage)-/;

/** The shipped pgbackrest.conf with the twin's repository and the member's paths. */
export function twinPgBackRestConf(shipped: string, m: TwinPgBackRestMember): string {
  const set: Record<string, string | number> = {
    'repo1-type': 'posix',
    'repo1-path': m.repositoryDir,
    'pg1-path': m.dataDir,
    'pg1-port': m.port,
    'pg1-socket-path': m.socketDir,
    'lock-path': m.lockPath,
  };
  const out: string[] = [];
  for (const line of shipped.split('\n')) {
    const key = /^([a-z0-9-]+)=/.exec(line)?.[1];
    if (key && STORAGE_KEY.test(key)) continue;
    out.push(key && key in set ? `${key}=${set[key]}` : line);
  }
  return out.join('\n');
}

/** Sections and `key=value` pairs of a pgbackrest.conf. */
export function parsePgBackRestConf(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = head[1];
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !section) throw new Error(`pgbackrest.conf: '${line}' is neither a [section] nor key=value in one`);
    out[section][line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}
