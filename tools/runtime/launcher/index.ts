/**
 * # Loopback launcher: the data tier's shipped files on real servers
 *
 * Starts Patroni-managed PostgreSQL 15 members (etcd as the DCS), PgBouncer pods and a
 * real Redis 7 Cluster on 127.X.Y.Z addresses, from the files the ConfigMaps
 * `postgres-files`, `pgbouncer-config` and `redis-config` ship (byte for byte). Only
 * addresses, ports, paths, the DCS section and passwords differ from a cluster.
 *
 * ```ts
 * import { synthObjects } from '../stacks/synth';
 * import { loadEnvironment } from '../stacks/environments';
 * import { startPatroni, startPgBouncer, startRedisCluster } from '../tools/runtime/launcher';
 *
 * const objects = synthObjects(loadEnvironment('dev'));
 * const pg = await startPatroni(objects, { members: 3 });
 * //   pg.primary / pg.readOnly  the Service stand-ins (ServiceProxy: leader / replicas)
 * //   pg.members[i] {name, host, port, rest}         pg.database, pg.user, pg.password
 * //   pg.clientConfig(ep?, 'app' | 'migration' | 'superuser')  pg.connect(ep?, as?)  pg.query(ep, sql, params)
 * //   pg.migration {user, password}  pg.rolesJob(objects?)  (the roles Job's command and env, as shipped)
 * //   pg.cluster()  pg.leaderIndex()  pg.killMember(i)  pg.stopMember(i)  pg.startMember(i)
 * //   pg.waitHealthy()  pg.patronictl('switchover', ...)  pg.reconfigure(objects)  pg.bringUpMs
 * const pool = await startPgBouncer(objects, { server: pg.primary, password: pg.password });
 * //   pool.service (Service stand-in)  pool.pods[i]  pool.killPod(i)  pool.startPod(i)
 * const redis = await startRedisCluster(objects);      // 3 masters x 1 replica, cluster ok
 * //   redis.nodes[i] {host, port, hostname}          redis.passwords.{app,exporter,admin,replication}
 * //   new Cluster(redis.nodes, { natMap: redis.natMap(), redisOptions: redis.auth('app') })
 * //   redis.cli(i, ...args) (as admin)  redis.cliAs('app', i, ...args)  redis.runCreate()  redis.killNode(i)  redis.startNode(i)
 * //   redis.restartAll({ newAddresses: true })       redis.bringUpMs
 * //   redis.clusterNodes(i)  redis.clusterInfo(i)  redis.healthy()  redis.nodeIds()
 * afterAll(() => Promise.all([pool.stop(), pg.stop(), redis.stop()]));
 * ```
 *
 * `source` is either the synthesized objects (the ConfigMaps are looked up by name) or a
 * `{ fileName: text }` map.
 *
 * Cleanup: each server runs in its own process group under a unique temp dir; `stop()`
 * stops the groups, kills anything else whose command line or working directory is under
 * the temp dir (Patroni detaches PostgreSQL into its own session) and removes the dir. A
 * process `exit` hook does the same for anything a failed test left. Patroni, PostgreSQL
 * and PgBouncer run as the `postgres` OS user (they refuse root); Redis runs as the current
 * user. Needs Debian's postgresql-15, patroni, python3-etcd, etcd-server, pgbouncer and
 * redis-server (tools/install-servers.sh).
 */
export { startPatroni, type PatroniLaunch, type PatroniMember, type StartPatroniOptions } from './patroni';
export { startPgBouncer, type PgBouncerLaunch, type PgBouncerPod, type StartPgBouncerOptions } from './pgbouncer';
export { ServiceProxy } from './service-proxy';
export {
  killPrimaryUnderWrites,
  postmasterStarts,
  reconfigureUnderWrites,
  rejoinMember,
  waitReplicasFollow,
  StatementLoop,
  switchoverUnderWrites,
} from './patroni-drills';
export {
  startRedisCluster,
  type ClusterNodeView,
  type RedisClusterLaunch,
  type RedisNode,
  type RedisTopology,
  type ScaleResult,
  type StartRedisOptions,
} from './redis';
export {
  CoverageSampler,
  loadKeys,
  mastersUsedMemory,
  missingKeys,
  resolveTwinHostnames,
  sampledScale,
  scaleClient,
  ScaleTraffic,
} from './redis-scale';
export { type Endpoint } from './processes';
export { type FileSource } from './sources';
