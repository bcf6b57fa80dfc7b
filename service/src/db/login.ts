/**
 * The application's two PostgreSQL logins (docs/postgres-security.md#rotation).
 *
 * With an alternate login, the Secret holds two passwords (`password` for POSTGRES_USER,
 * `alternate-password` for POSTGRES_ALTERNATE_USER) and `active-login`, the name of the login in
 * use. A rotation sets a new password on the login nobody uses, then names it in `active-login`.
 * Every new connection reads the mounted files again, so the flip needs no restart, and a
 * connection already open keeps the login it was made with (PostgreSQL never ends a session for a
 * password change).
 */
import { readFileSync } from 'node:fs';
import { Client, type ClientConfig } from 'pg';

/** The mounted Secret's files and the two login names. */
export interface LoginFiles {
  /** POSTGRES_USER: the login `passwordFile` belongs to. */
  readonly user: string;
  readonly passwordFile: string;
  /** POSTGRES_ALTERNATE_USER: the login `alternatePasswordFile` belongs to. */
  readonly alternateUser: string;
  readonly alternatePasswordFile: string;
  /** Names the login in use; absent or empty: `user`. */
  readonly activeLoginFile: string;
}

export interface Login {
  readonly user: string;
  readonly password: string;
}

export type ReadFile = (path: string) => string;

const readUtf8: ReadFile = (p) => readFileSync(p, 'utf8');

/** The login a new connection uses, read from the files now. */
export function readLogin(f: LoginFiles, readFile: ReadFile = readUtf8): Login {
  let active = '';
  try {
    active = readFile(f.activeLoginFile).trim();
  } catch (e) {
    // The Secret has no `active-login` key (an optional item): the first login.
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
  }
  const password = (file: string) => readFile(file).replace(/\r?\n$/, '');
  if (active === '' || active === f.user) return { user: f.user, password: password(f.passwordFile) };
  if (active === f.alternateUser) return { user: f.alternateUser, password: password(f.alternatePasswordFile) };
  throw new Error(
    `${f.activeLoginFile} (${JSON.stringify(active)}) must name ${f.user} or ${f.alternateUser}: ` +
      "fix the Secret's active-login key",
  );
}

/** A pg Client class that logs in with the login read when it is made (each new connection of a Pool). */
export function rotatingClient(f: LoginFiles, readFile: ReadFile = readUtf8): typeof Client {
  return class RotatingLoginClient extends Client {
    constructor(config?: string | ClientConfig) {
      super({ ...(typeof config === 'string' ? { connectionString: config } : config), ...readLogin(f, readFile) });
    }
  };
}
