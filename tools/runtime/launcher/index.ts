/**
 * # Loopback launcher: the data tier's shipped files on real servers
 *
 * Starts a real PostgreSQL 15 primary + streaming replicas and a real Redis 7 Cluster on
 * 127.X.Y.Z addresses, from the files the ConfigMaps `postgres-config` and `redis-config`
 * ship (byte for byte). Only addresses, ports, paths and passwords differ from a
 * cluster, and they reach the scripts through environment variables.
 *
 * ```ts
 * import { synthObjects } from '../stacks/synth';
 * import { loadEnvironment } from '../stacks/environments';
 * import { startPostgres, startRedisCluster } from '../tools/runtime/launcher';
 *
 * const objects = synthObjects(loadEnvironment('dev'));
 * const pg = await startPostgres(objects, { replicas: 2 });
 * //   pg.primary / pg.replicas[i]  {host, port}     pg.database, pg.user, pg.password
 * //   pg.superuser {user, password}                  pg.clientConfig(ep?, 'app' | 'superuser')
 * //   pg.connect(ep?) -> pg.Client   pg.query(ep, sql, params)
 * //   pg.stopReplica(i)  pg.startReplica(i, { wipe })  pg.restartPrimary()  pg.bringUpMs
 * const redis = await startRedisCluster(objects);      // 3 masters x 1 replica, cluster ok
 * //   redis.nodes[i] {host, port, hostname}          redis.password
 * //   new Cluster(redis.nodes, { natMap: redis.natMap(), redisOptions: { password: redis.password } })
 * //   redis.cli(i, ...args)  redis.runCreate()  redis.killNode(i)  redis.startNode(i)
 * //   redis.restartAll({ newAddresses: true })       redis.bringUpMs
 * //   redis.clusterNodes(i)  redis.clusterInfo(i)  redis.healthy()  redis.nodeIds()
 * afterAll(() => Promise.all([pg.stop(), redis.stop()]));
 * ```
 *
 * `source` is either the synthesized objects (the ConfigMaps are looked up by name) or a
 * `{ fileName: text }` map (e.g. `postgresConfigFiles(config.postgres)`).
 *
 * Cleanup: each server runs in its own process group under a unique temp dir; `stop()`
 * stops the groups, kills anything else whose command line names the temp dir (pg_ctl
 * detaches its server) and removes the dir. A process `exit` hook does the same for
 * anything a failed test left. PostgreSQL runs as the `postgres` OS user (it refuses
 * root); Redis runs as the current user. Needs Debian's postgresql-15 and redis-server
 * (tools/install-servers.sh).
 */
export { startPostgres, type PostgresLaunch, type PostgresReplica, type StartPostgresOptions } from './postgres';
export {
  startRedisCluster,
  type ClusterNodeView,
  type RedisClusterLaunch,
  type RedisNode,
  type StartRedisOptions,
} from './redis';
export { type Endpoint } from './processes';
export { type FileSource } from './sources';
