/**
 * The edge's certificate reload: a shell loop in a sidecar of the nginx pod that
 * sends nginx's master SIGHUP (what `nginx -s reload` sends) when the mounted
 * TLS Secret changes, so a renewed certificate is served without a restart.
 *
 * Why a poll and not inotify: the loop runs in the nginx image itself (already
 * pinned, no second image to ship), whose shell is busybox; a digest of two
 * small files every few seconds costs nothing, works whatever writes the files,
 * and the kubelet's own delay (its sync period, about a minute) dominates anyway.
 * The same bytes run in the tests, under Debian's busybox, against real nginx.
 */
import { EDGE_PATHS } from './nginx-conf';

/** ConfigMap key of the script (in the edge's nginx.conf ConfigMap). */
export const CERT_RELOAD_KEY = 'cert-reload.sh';
/** Where the sidecar finds it. */
export const CERT_RELOAD_PATH = '/etc/nginx/cert-reload.sh';
/** Touched on every turn of the loop: the probes read it. */
export const CERT_RELOAD_HEARTBEAT = `${EDGE_PATHS.scratch}/cert-reload.alive`;

export interface CertReloadInput {
  /** Seconds between two looks at the TLS files: the bound on how long nginx serves a replaced certificate. */
  readonly checkSeconds: number;
}

/**
 * The watcher script. The bound from "files swapped" to "new connections get the
 * new certificate" is `checkSeconds` plus nginx's reload (tens of ms); in-flight
 * requests finish on the old workers.
 */
export function renderCertReloadScript(input: CertReloadInput): string {
  return `#!/bin/sh
# Rendered by constructs/edge/cert-reload.ts; do not edit by hand.
# Reloads nginx when its TLS Secret changes. The kubelet swaps a Secret volume's
# files atomically (a new ..data symlink); every CHECK_SECONDS this compares a
# digest of tls.crt and tls.key with the one nginx last loaded and, on a change,
# sends nginx's master SIGHUP, as \`nginx -s reload\` does: new workers start with
# the new certificate, old ones finish their requests and exit. It runs beside
# nginx as the same user, in the pod's one process namespace.
set -u
TLS_DIR=${EDGE_PATHS.tls}
PID_FILE=${EDGE_PATHS.scratch}/nginx.pid
HEARTBEAT=${CERT_RELOAD_HEARTBEAT}
CHECK_SECONDS=${input.checkSeconds}

log() { echo "cert-reload: $*"; }
fingerprint() { cat "$TLS_DIR/tls.crt" "$TLS_DIR/tls.key" 2>/dev/null | md5sum; }
# The heartbeat tells the probes the loop turns; sleep runs in the background, so
# SIGTERM ends the loop (and the sleep) at once.
sleeper=
pause() {
  : >"$HEARTBEAT"
  sleep "$1" &
  sleeper=$!
  wait "$sleeper"
}
trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT

# nginx's master writes its pid once it runs.
until [ -s "$PID_FILE" ]; do pause 1; done
loaded=$(fingerprint)
# Files renewed between nginx's start and ours: nginx read the previous ones.
# shellcheck disable=SC3013 # -nt: not POSIX, but in busybox ash (the image's sh) and dash
if [ "$TLS_DIR/tls.crt" -nt "$PID_FILE" ] || [ "$TLS_DIR/tls.key" -nt "$PID_FILE" ]; then
  loaded=renewed-before-start
fi
log "watching $TLS_DIR every \${CHECK_SECONDS}s (nginx pid $(cat "$PID_FILE"))"
while :; do
  current=$(fingerprint)
  if [ "$current" != "$loaded" ]; then
    pid=$(cat "$PID_FILE" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -HUP "$pid"; then
      log "TLS files changed: nginx reloaded (SIGHUP to $pid)"
      loaded=$current
    else
      log "TLS files changed but nginx (pid '$pid') could not be signalled; trying again"
    fi
  fi
  pause "$CHECK_SECONDS"
done
`;
}

/**
 * The sidecar's probes: ready once the loop turns (it never takes the pod out of
 * rotation afterwards: a certificate nginx refused leaves the previous one serving);
 * live while the heartbeat is younger than three turns.
 */
export function certReloadProbes(input: CertReloadInput): { readiness: string[]; liveness: string[] } {
  const maxAgeSeconds = 3 * input.checkSeconds + 10;
  return {
    readiness: ['test', '-e', CERT_RELOAD_HEARTBEAT],
    liveness: ['sh', '-c', `[ $(($(date +%s) - $(date -r ${CERT_RELOAD_HEARTBEAT} +%s))) -lt ${maxAgeSeconds} ]`],
  };
}
