/**
 * The reconfigure Job: brings a running Patroni cluster to the dynamic configuration the
 * shipped patroni.yml seeds new clusters with (`bootstrap.dcs`, see `patroniDynamicConfig`),
 * so a changed parameter reaches every member without a rolling restart of the pods.
 *
 * As Spilo/the Zalando operator and CloudNativePG do: the parameters live in Patroni's DCS
 * configuration; Patroni reloads every member when it changes, which applies every parameter
 * whose `pg_settings.context` is not `postmaster`; for the rest Patroni flags the members
 * "pending restart", and the Job restarts the replicas one at a time, switches over to a
 * restarted one, and restarts the old leader if it is still pending.
 *
 * The Job talks only to the members' Patroni REST API, the endpoints `patronictl` itself calls
 * (PATCH /config is `edit-config`'s merge, POST /restart and /switchover): no Kubernetes API
 * token, no database login. Its name carries a hash of the desired configuration and of the
 * script, so a change is a new Job (kubectl apply and Pulumi create it) and an unchanged one is
 * left alone; the script is idempotent, so a re-run does nothing.
 */
import type { Construct } from 'constructs';
import { memberJob, type MemberJobCluster } from './member-job';
import type { PatroniDynamicConfig } from './patroni-files';

/**
 * The script (Python 3 and PyYAML, both in the image because Patroni needs them). Inputs:
 * PATRONI_CONFIG (patroni.yml: the desired document is its `bootstrap.dcs`), PATRONI_MEMBERS
 * (space-separated REST URLs to find the cluster by), RECONFIGURE_WAIT_SECONDS (budget of each wait).
 */
export function reconfigureScript(): string {
  return String.raw`#!/usr/bin/env python3
# Rendered by constructs/postgres/patroni-reconfigure.ts: the reconfigure Job runs it.
"""Brings a running Patroni cluster to the dynamic configuration of patroni.yml's bootstrap.dcs.

1. Waits for a leader and every member running, the replicas streaming from it.
2. PATCH /config with what differs (patronictl edit-config's merge; a parameter absent from the
   desired document is removed): every member's Patroni reloads PostgreSQL, which applies every
   parameter whose pg_settings.context is not postmaster.
3. Waits until every member has run a Patroni loop on the new configuration.
4. Members "pending restart" (postmaster parameters): the replicas are restarted one at a time,
   each waited for until it streams again; then a switchover to a restarted replica; then the old
   leader, now a replica, is restarted if it is still pending. A lowered max_connections (or
   another parameter a standby may not have below its primary) keeps the replicas pending until
   the leader runs it: the leader is then restarted in place, and the replicas after it.
Safe to re-run: with nothing to patch and nothing pending it changes nothing and exits 0.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

import yaml

CONFIG = os.environ.get("PATRONI_CONFIG", "/etc/patroni/patroni.yml")
SEEDS = os.environ.get("PATRONI_MEMBERS", "").split()
WAIT = float(os.environ.get("RECONFIGURE_WAIT_SECONDS", "900"))
ROUNDS = 4
T0 = time.time()


class Failed(Exception):
    pass


def log(message):
    print("reconfigure: [%6.1fs] %s" % (time.time() - T0, message), flush=True)


def call(base, path, method="GET", body=None, timeout=10.0):
    """(status, text) of one REST call; (0, reason) when the member does not answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, ValueError) as e:
        return 0, str(e)


def get_json(base, path):
    status, text = call(base, path, timeout=5.0)
    if status != 200:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def api(member):
    """A member's REST base URL, from the api_url Patroni publishes (http://host:port/patroni)."""
    return member["api_url"].rsplit("/patroni", 1)[0]


def cluster(known=()):
    """GET /cluster from the first member that answers."""
    for base in list(known) + SEEDS:
        c = get_json(base, "/cluster")
        if c and c.get("members"):
            return c
    return None


def leader_of(c):
    return next((m for m in c["members"] if m["role"] == "leader"), None)


def replicas_of(c):
    return [m for m in c["members"] if m["role"] in ("replica", "sync_standby")]


def streaming_names(leader):
    """Members the leader has a streaming WAL sender for (Patroni names them by application_name)."""
    status = get_json(api(leader), "/patroni") or {}
    return {r.get("application_name") for r in status.get("replication") or [] if r.get("state") == "streaming"}


def health(c, sync_mode):
    """Why the cluster is not healthy yet, or None."""
    if c is None:
        return "no member answers GET /cluster"
    leader = leader_of(c)
    if leader is None or leader.get("state") != "running":
        return "no running leader"
    if len(c["members"]) < len(SEEDS):
        return "%d of %d members registered" % (len(c["members"]), len(SEEDS))
    streaming = streaming_names(leader)
    for m in replicas_of(c):
        if m.get("state") != "running" or m["name"] not in streaming:
            return "%s is %s, not streaming from %s" % (m["name"], m.get("state"), leader["name"])
    if sync_mode and replicas_of(c) and not any(m["role"] == "sync_standby" for m in c["members"]):
        return "no synchronous standby yet"
    return None


def wait_healthy(why, sync_mode, known=()):
    deadline = time.time() + WAIT
    problem = None
    while time.time() < deadline:
        c = cluster(known)
        problem = health(c, sync_mode)
        if problem is None:
            return c
        time.sleep(1)
    raise Failed("waited %ds for a healthy cluster (%s): %s" % (WAIT, why, problem))


def same(a, b):
    if a is None or b is None:
        return a is b
    return str(a) == str(b)


def patch_for(desired, live):
    """The merge patch that makes the live configuration the desired one.

    Top-level keys (ttl, synchronous_mode, ...) are set when they differ and never removed (pause,
    or a key set by hand, stays). postgresql.parameters is owned whole: a parameter no longer
    desired is removed (null), so the cluster falls back to PostgreSQL's default.
    """
    patch = {}
    for key, value in desired.items():
        if key != "postgresql":
            if not same(live.get(key), value):
                patch[key] = value
            continue
        live_pg = live.get("postgresql") or {}
        pg = {}
        for pg_key, pg_value in value.items():
            if pg_key != "parameters":
                if not same(live_pg.get(pg_key), pg_value):
                    pg[pg_key] = pg_value
                continue
            live_params = live_pg.get("parameters") or {}
            params = {n: v for n, v in pg_value.items() if not same(live_params.get(n), v)}
            params.update({n: None for n in live_params if n not in pg_value})
            if params:
                pg["parameters"] = params
        if pg:
            patch["postgresql"] = pg
    return patch


def describe(patch, live):
    lines = []
    for key, value in patch.items():
        if key != "postgresql":
            lines.append("%s: %s -> %s" % (key, live.get(key), value))
            continue
        live_pg = live.get("postgresql") or {}
        for pg_key, pg_value in value.items():
            if pg_key != "parameters":
                lines.append("postgresql.%s: %s -> %s" % (pg_key, live_pg.get(pg_key), pg_value))
                continue
            live_params = live_pg.get("parameters") or {}
            for n, v in pg_value.items():
                lines.append("%s: %s -> %s" % (n, live_params.get(n), "(removed)" if v is None else v))
    return lines


def member_status(member):
    return get_json(api(member), "/patroni") or {}


def wait_loops(c, loop_wait):
    """Waits until every member has run a Patroni loop that read the configuration now in the DCS.

    Each loop reads the DCS first (dcs_last_seen, whole seconds) and applies a changed dynamic
    configuration at its end; a second fresh read means that loop is over. GET /patroni does not
    read the DCS itself (GET /cluster would). At least two loop_waits pass in any case.
    """
    start = time.time()
    first = {m["name"]: member_status(m).get("dcs_last_seen", 0) for m in c["members"]}
    seen = {name: [] for name in first}
    deadline = start + WAIT
    while time.time() < deadline:
        for m in c["members"]:
            value = member_status(m).get("dcs_last_seen", 0)
            reads = seen[m["name"]]
            if value > (reads[-1] if reads else first[m["name"]]):
                reads.append(value)
        if all(len(r) >= 2 for r in seen.values()) and time.time() - start >= 2 * loop_wait + 1:
            return
        time.sleep(0.5)
    raise Failed("members did not run a Patroni loop within %ds: %s" % (WAIT, seen))


def restart(member):
    log("restarting %s (pending restart)" % member["name"])
    status, text = call(api(member), "/restart", "POST", {"restart_pending": True}, timeout=WAIT)
    if status == 503 and "conditions are not satisfied" in text:
        log("%s is no longer pending: not restarted" % member["name"])
        return False
    if status != 200:
        raise Failed("POST /restart on %s answered %s: %s" % (member["name"], status, text.strip()))
    return True


def main():
    if not SEEDS:
        raise Failed("PATRONI_MEMBERS is empty: give the REST URLs of the members")
    with open(CONFIG) as f:
        desired = yaml.safe_load(f)["bootstrap"]["dcs"]
    summary = {"patched": [], "restarted": [], "switchover": None, "leaderRestarted": False}

    c = wait_healthy("before reading the configuration", sync_mode=False)
    known = [api(m) for m in c["members"]]
    live = get_json(known[0], "/config")
    if live is None:
        raise Failed("GET /config on %s failed" % known[0])
    sync_mode = bool(live.get("synchronous_mode"))
    c = wait_healthy("before changing the configuration", sync_mode, known)
    for attempt in range(5):
        live = get_json(api(leader_of(c)), "/config") or live
        patch = patch_for(desired, live)
        if not patch:
            log("the DCS configuration is already the desired one")
            break
        summary["patched"] = describe(patch, live)
        for line in summary["patched"]:
            log("set %s" % line)
        status, text = call(api(leader_of(c)), "/config", "PATCH", patch)
        if status == 200:
            break
        if status != 409:
            raise Failed("PATCH /config answered %s: %s" % (status, text.strip()))
        log("the configuration changed under us (409): reading it again")
    else:
        raise Failed("PATCH /config kept conflicting")
    live = get_json(api(leader_of(c)), "/config") or live
    sync_mode = bool(live.get("synchronous_mode"))
    wait_loops(c, float(live.get("loop_wait", 10)))

    for _ in range(ROUNDS):
        c = wait_healthy("before restarting", sync_mode, known)
        known = [api(m) for m in c["members"]]
        pending = {m["name"] for m in c["members"] if member_status(m).get("pending_restart")}
        if not pending:
            log("no member is pending restart: done")
            print("reconfigure: summary " + json.dumps(summary), flush=True)
            return 0
        if c.get("pause"):
            raise Failed("the cluster is paused (maintenance mode) and %s pending restart: "
                         "resume it (patronictl resume) and this Job retries" % sorted(pending))
        leader = leader_of(c)
        # The synchronous standby last: the others are streaming again by then, one takes over its role.
        for m in sorted(replicas_of(c), key=lambda m: (m["role"] == "sync_standby", m["name"])):
            if m["name"] not in pending:
                continue
            if restart(m):
                summary["restarted"].append(m["name"])
            wait_healthy("after restarting %s" % m["name"], sync_mode, known)
            log("%s streams again" % m["name"])
        if not member_status(leader).get("pending_restart"):
            continue
        c = wait_healthy("before the switchover", sync_mode, known)
        candidates = [m for m in replicas_of(c)
                      if not member_status(m).get("pending_restart") and (not sync_mode or m["role"] == "sync_standby")]
        if candidates:
            target = candidates[0]["name"]
            log("switchover %s -> %s" % (leader["name"], target))
            started = time.time()
            status, text = call(api(leader), "/switchover", "POST",
                                {"leader": leader["name"], "candidate": target}, timeout=120)
            if status != 200:
                raise Failed("POST /switchover answered %s: %s" % (status, text.strip()))
            log(text.strip())
            summary["switchover"] = {"from": leader["name"], "to": target,
                                     "startedAt": started, "endedAt": time.time()}
        else:
            log("no replica runs the new settings (a value a standby may not have below its primary): "
                "restarting the leader %s in place" % leader["name"])
            if restart(leader):
                summary["restarted"].append(leader["name"])
                summary["leaderRestarted"] = True
    raise Failed("members still pending restart after %d rounds" % ROUNDS)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        log("failed: %s" % e)
        sys.exit(1)
`;
}

/** What the reconfigure Job needs from its cluster. */
export interface ReconfigureJobProps extends MemberJobCluster {
  /** Patroni REST URLs of the members (per-pod DNS names). */
  readonly memberUrls: readonly string[];
  readonly restApiPort: number;
  /** The desired dynamic configuration: the Job's name changes with it. */
  readonly desired: PatroniDynamicConfig;
  /** The script the Job runs (its bytes are in the ConfigMap): the Job's name changes with it. */
  readonly script: string;
}

/** The Job (`<component>-reconfigure-<hash>`), its ServiceAccount (no token) and NetworkPolicy; returns the Job's name. */
export function reconfigureJob(scope: Construct, p: ReconfigureJobProps): { name: string; component: string } {
  // Egress to the members' REST API only: no database port, no API server.
  return memberJob(scope, {
    ...p,
    suffix: 'reconfigure',
    ports: [p.restApiPort],
    container: {
      name: 'reconfigure',
      command: ['python3', `${p.configDir}/reconfigure.py`],
      env: [
        { name: 'PATRONI_CONFIG', value: `${p.configDir}/patroni.yml` },
        { name: 'PATRONI_MEMBERS', value: p.memberUrls.join(' ') },
        // A replica's restart includes its shutdown checkpoint and crash-free start; a base backup is not involved.
        { name: 'RECONFIGURE_WAIT_SECONDS', value: '900' },
        { name: 'PYTHONDONTWRITEBYTECODE', value: '1' },
      ],
    },
    inputs: [p.desired, p.script],
  });
}
