/**
 * Rejects with "`what` timed out after `ms` ms" unless `p` settles first; the timer never outlives the race.
 *
 * The deadline is judged after the I/O already waiting for the process: when the timer fires, the
 * verdict waits for the event loop's poll phase (setImmediate), so an answer that arrived while the
 * process was starved of CPU (a loaded node) settles `p` first. Node runs due timers before it reads
 * sockets, so without this a process that was not scheduled for `ms` would call every answer late.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      immediate = setImmediate(() => reject(new Error(`${what} timed out after ${ms} ms`)));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  });
}
