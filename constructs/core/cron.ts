/**
 * 5-field cron expressions as Kubernetes CronJobs read them (minute hour day-of-month month
 * day-of-week; `*`, lists, ranges, steps, month and weekday names), checked field by field,
 * and the longest gap between two runs (what "a backup older than 1.5x its schedule" means).
 */

interface Field {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const FIELDS: readonly Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  // 7 is Sunday too, as in Vixie cron.
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** The values each field allows, and whether day-of-month / day-of-week were restricted. */
export interface CronSchedule {
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly days: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly weekdays: ReadonlySet<number>;
  readonly daysRestricted: boolean;
  readonly weekdaysRestricted: boolean;
}

function value(text: string, f: Field): number {
  const byName = f.names?.indexOf(text.toLowerCase()) ?? -1;
  if (byName >= 0) return byName + (f.min === 1 ? 1 : 0);
  if (!/^\d+$/.test(text)) throw new Error(`${f.name} '${text}' is not a number`);
  const n = Number(text);
  if (n < f.min || n > f.max) throw new Error(`${f.name} ${n} is outside ${f.min}-${f.max}`);
  return n;
}

function field(text: string, f: Field): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new Error(`${f.name} '${part}' is not a value, range or step`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw new Error(`${f.name} step '${m[2]}' must be >= 1`);
    let lo: number;
    let hi: number;
    if (m[1] === '*') [lo, hi] = [f.min, f.max];
    else if (m[1].includes('-')) {
      const [a, b] = m[1].split('-');
      [lo, hi] = [value(a, f), value(b, f)];
      if (lo > hi) throw new Error(`${f.name} range '${m[1]}' runs backwards`);
    } else {
      lo = value(m[1], f);
      hi = m[2] === undefined ? lo : f.max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Parses a 5-field expression; throws naming the field that is wrong. */
export function parseCron(expr: string): CronSchedule {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new Error(`has ${parts.length} field(s); a cron schedule has 5 (minute hour day-of-month month day-of-week)`);
  }
  const [minutes, hours, days, months, weekdays] = parts.map((p, i) => field(p, FIELDS[i]));
  if (weekdays.delete(7)) weekdays.add(0);
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return {
    minutes: sorted(minutes),
    hours: sorted(hours),
    days,
    months,
    weekdays,
    daysRestricted: parts[2] !== '*',
    weekdaysRestricted: parts[4] !== '*',
  };
}

/** Why `expr` is not a 5-field cron schedule, or undefined. */
export function cronProblem(expr: string): string | undefined {
  try {
    const s = parseCron(expr);
    if (cronMaxIntervalSeconds(s) === undefined) return 'never runs (no such date)';
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Whether the schedule runs on this UTC day (cron's rule: either day field matches when both are restricted). */
function runsOn(s: CronSchedule, d: Date): boolean {
  if (!s.months.has(d.getUTCMonth() + 1)) return false;
  const dom = s.days.has(d.getUTCDate());
  const dow = s.weekdays.has(d.getUTCDay());
  if (s.daysRestricted && s.weekdaysRestricted) return dom || dow;
  return dom && dow;
}

/**
 * The longest time between two consecutive runs, in seconds, over 8 years (leap years and
 * month lengths included); undefined when the schedule never runs.
 */
export function cronMaxIntervalSeconds(schedule: string | CronSchedule): number | undefined {
  const s = typeof schedule === 'string' ? parseCron(schedule) : schedule;
  const start = Date.UTC(2024, 0, 1);
  const day = 86400000;
  let first: number | undefined;
  let last: number | undefined;
  let longest = 0;
  for (let t = start; t < start + 8 * 366 * day; t += day) {
    if (!runsOn(s, new Date(t))) continue;
    for (const h of s.hours) {
      for (const m of s.minutes) {
        const run = t + (h * 60 + m) * 60000;
        if (last !== undefined) longest = Math.max(longest, run - last);
        first ??= run;
        last = run;
      }
    }
  }
  if (first === undefined || last === undefined) return undefined;
  // One run in 8 years (Feb 29 on a Monday...): the gap is the whole span.
  return (first === last ? 8 * 365 * day : longest) / 1000;
}
