/**
 * How PostgreSQL 15 applies each server parameter, from `pg_settings.context` of a real
 * server (pg15-settings.json, written by `npm run pg-settings`; a real-server test fails when
 * it differs from a live server's pg_settings). Not a hand-kept list.
 *
 * - `postmaster`: read at server start only; a change needs a restart (the reconfigure Job
 *   restarts the replicas one at a time, switches over, then restarts the old leader);
 * - `sighup`, `superuser`, `user`, `backend`, `superuser-backend`: a reload applies them
 *   (the `*backend` ones to sessions opened after it), no restart;
 * - `internal`: read-only, set when the cluster was created.
 */
import settings from './pg15-settings.json';
import * as core from '../core';

export type SettingContext =
  'internal' | 'postmaster' | 'sighup' | 'superuser-backend' | 'backend' | 'superuser' | 'user';

/** `pg_settings.context` of every parameter of PostgreSQL 15 running the shipped config (pg_stat_statements loaded). */
export const PG_SETTING_CONTEXTS: Readonly<Record<string, SettingContext>> = settings.contexts as Record<
  string,
  SettingContext
>;

/** How a changed value reaches a running member. */
export type ApplyPath = 'reload' | 'restart' | 'read-only';

/** PostgreSQL matches parameter names case-insensitively (pg_settings spells a few in mixed case: DateStyle). */
const BY_LOWER_NAME = new Map(Object.entries(PG_SETTING_CONTEXTS).map(([name, c]) => [name.toLowerCase(), c]));

/** The parameter's context, or undefined for a name PostgreSQL 15 does not know. */
export function settingContext(name: string): SettingContext | undefined {
  return BY_LOWER_NAME.get(name.toLowerCase());
}

/** 'restart' for postmaster parameters, 'read-only' for internal ones, 'reload' for the rest. */
export function applyPathOf(context: SettingContext): ApplyPath {
  if (context === 'postmaster') return 'restart';
  if (context === 'internal') return 'read-only';
  return 'reload';
}

/** One line on how a changed parameter is applied (the diff and the docs say it the same way). */
export function applyPathText(name: string): string {
  const context = settingContext(name);
  if (!context) return `${name} is not a PostgreSQL 15 parameter`;
  const path = applyPathOf(context);
  if (path === 'restart')
    return `context postmaster: needs a restart; the reconfigure Job restarts the replicas one at a time, switches over to one, then restarts the old leader (a write pause of a switchover)`;
  if (path === 'read-only') return 'context internal: read-only, fixed when the cluster was created';
  return `context ${context}: applied by a reload on every member, no restart`;
}

/**
 * Parameters the user may not set through `parameters`: Patroni owns them (addresses, names,
 * files, replication and recovery settings it writes per member), or a prop of its own sets them.
 */
export const RESERVED_PARAMETERS: Readonly<Record<string, string>> = {
  listen_addresses: 'Patroni sets it from postgresql.listen',
  port: 'Patroni sets it from postgresql.listen',
  cluster_name: "Patroni sets it to the cluster's scope",
  hot_standby: 'Patroni keeps it on: replicas serve reads',
  synchronous_standby_names: 'Patroni names the synchronous standbys itself (use synchronousReplicas)',
  unix_socket_directories: "the pod's socket directory is fixed",
  data_directory: 'Patroni sets it from postgresql.data_dir',
  config_file: 'Patroni writes postgresql.conf',
  hba_file: 'Patroni writes pg_hba.conf',
  ident_file: 'Patroni writes pg_ident.conf',
  primary_conninfo: 'Patroni points each replica at the leader',
  primary_slot_name: "Patroni gives each replica its member's slot",
  recovery_target_timeline: 'Patroni manages recovery',
  max_connections: 'set maxConnections (the connection budget is checked against it)',
  synchronous_commit: 'set synchronousCommit',
};

/** Why `name = value` cannot be one of the `parameters`, or undefined. */
export function serverParameterProblem(name: string, value: unknown): string | undefined {
  if (typeof value !== 'number' && typeof value !== 'string') return 'must be a string or a number';
  if (typeof value === 'string' && /[\n\r\0]/.test(value)) return 'must be one line';
  const reserved = RESERVED_PARAMETERS[name.toLowerCase()];
  if (reserved) return `cannot be set here: ${reserved}`;
  const context = settingContext(name);
  if (!context)
    return `'${name}' is not a PostgreSQL 15 parameter (constructs/postgres/pg15-settings.json lists every one): check the spelling`;
  if (context === 'internal') return `'${name}' is read-only (context internal): it cannot be set`;
  return undefined;
}

/** Throws unless every name is a settable PostgreSQL 15 parameter outside Patroni's and the props' own. */
export function checkServerParameters(prop: string, parameters: Readonly<Record<string, string | number>>): void {
  for (const [name, value] of Object.entries(parameters)) {
    const problem = serverParameterProblem(name, value);
    if (problem) core.fail(`${prop}.${name}`, value, problem);
  }
}
