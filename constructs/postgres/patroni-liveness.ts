/**
 * The Patroni container's liveness check, shipped in the `postgres-files` ConfigMap and run by
 * the kubelet as an exec probe (the twin runs the same bytes against real Patroni).
 */

/** Seconds a replica may stay on an older timeline than the leader's before liveness fails. */
export const DIVERGED_REPLICA_SECONDS = 30;

/**
 * Liveness of one Patroni member, and the repair of a diverged replica.
 *
 * Fails (exit 1) when Patroni's own `GET /liveness` does not answer 200 (its HA loop has not run
 * within ttl): the kubelet restarts the container.
 *
 * A replica on an older timeline than the leader's whose replay position has not moved for
 * LIVENESS_DIVERGED_SECONDS (default {@link DIVERGED_REPLICA_SECONDS}) replayed WAL of the old
 * timeline past the fork point (restored from the archive while it waited for a new leader) and can
 * never stream again; a replica that follows reaches the leader's timeline within seconds of
 * streaming, and one that catches up from the archive moves. Patroni 3.0 checks for divergence only
 * when it starts PostgreSQL, and neither a container restart nor `POST /restart` heals it reliably
 * (measured: the member may stay "starting" for good, short of the minimum recovery point it replayed
 * on the old timeline). The check asks Patroni to reinitialise the member (`POST /reinitialize`, what
 * `patronictl reinit` does: a new copy through `create_replica_methods`), at most once per
 * LIVENESS_ASK_AGAIN_SECONDS, and stays passing: Patroni itself is live.
 *
 * Argument: Patroni's REST base URL (default http://127.0.0.1:8008). What it saw last is kept in
 * LIVENESS_STATE_FILE (default /tmp/patroni-liveness.json, an emptyDir).
 */
export function livenessScript(): string {
  return String.raw`#!/usr/bin/env python3
# Rendered by constructs/postgres/patroni-liveness.ts: the Patroni container's livenessProbe runs it.
import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = (sys.argv[1] if len(sys.argv) > 1 else 'http://127.0.0.1:8008').rstrip('/')
STATE = os.environ.get('LIVENESS_STATE_FILE', '/tmp/patroni-liveness.json')
LIMIT = float(os.environ.get('LIVENESS_DIVERGED_SECONDS', '${DIVERGED_REPLICA_SECONDS}'))
# At most one reinitialise request in this long (it copies the whole data directory).
ASK_AGAIN = float(os.environ.get('LIVENESS_ASK_AGAIN_SECONDS', '600'))


def get(path):
    try:
        with urllib.request.urlopen(BASE + path, timeout=2) as r:
            return r.status, json.loads(r.read() or b'{}')
    except urllib.error.HTTPError as e:
        return e.code, {}


def forget():
    try:
        os.remove(STATE)
    except FileNotFoundError:
        pass


def main():
    try:
        status, _ = get('/liveness')
    except Exception as e:  # refused, timed out: Patroni is not serving
        print('liveness: failed: Patroni does not answer: %s' % e)
        return 1
    if status != 200:
        print('liveness: failed: Patroni answers %d on /liveness (its HA loop is stale)' % status)
        return 1
    try:
        _, me = get('/patroni')
        _, cluster = get('/cluster')
    except Exception as e:
        # Patroni itself is live; a detail it cannot give now is no reason to restart it.
        print('liveness: ok (cluster state unavailable: %s)' % e)
        return 0
    leader = next((m for m in cluster.get('members', []) if m.get('role') in ('leader', 'standby_leader')), None)
    mine = me.get('timeline')
    theirs = leader.get('timeline') if leader else None
    behind = (me.get('role') == 'replica' and isinstance(mine, int) and isinstance(theirs, int) and mine < theirs)
    if not behind:
        forget()
        print('liveness: ok')
        return 0
    replayed = (me.get('xlog') or {}).get('replayed_location')
    now = time.time()
    try:
        with open(STATE) as f:
            seen = json.load(f)
    except (OSError, ValueError):
        seen = {}
    if seen.get('timeline') != mine or seen.get('replayed') != replayed:
        seen = {'since': now, 'timeline': mine, 'replayed': replayed, 'asked': seen.get('asked', 0)}
        with open(STATE, 'w') as f:
            json.dump(seen, f)
    stuck_for = now - seen['since']
    if stuck_for < LIMIT:
        print('liveness: ok for now: on timeline %d, the leader on %d; replay at %s for %.0f s of %.0f'
              % (mine, theirs, replayed, stuck_for, LIMIT))
        return 0
    if now - seen.get('asked', 0) < ASK_AGAIN:
        print('liveness: ok; waiting for the reinitialisation asked %.0f s ago' % (now - seen['asked']))
        return 0
    seen['asked'] = now
    with open(STATE, 'w') as f:
        json.dump(seen, f)
    req = urllib.request.Request(BASE + '/reinitialize', data=b'{"force": true}', method='POST',
                                 headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            answer = 'HTTP %d %s' % (r.status, r.read().decode(errors='replace'))
    except urllib.error.HTTPError as e:
        answer = 'HTTP %d %s' % (e.code, e.read().decode(errors='replace'))
    except Exception as e:
        answer = 'no answer (%s)' % e
    print('liveness: ok; a replica on timeline %d while the leader is on %d, replay stopped at %s for %.0f s: '
          'it diverged from the leader; asked Patroni to reinitialise it: %s' % (mine, theirs, replayed, stuck_for, answer))
    return 0


if __name__ == '__main__':
    sys.exit(main())
`;
}
