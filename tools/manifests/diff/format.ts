/**
 * Renders manifest diffs: text for the terminal, Markdown for a pull-request
 * comment (with the capacity table), JSON for other tools. Every format opens
 * each environment with one summary line: `prod: 2 changed, 1 added, 0 removed`.
 */
import { type CapacitySummary, formatCapacityMarkdown } from '../capacity/capacity';
import { describe } from '../policy/engine';
import { lineDiff } from './lines';
import { type Change, type EnvironmentDiff, immutableCount, isEmpty } from './object-diff';
import { preview } from '../../k8s/values';

export type DiffFormat = 'text' | 'markdown' | 'json';
export const DIFF_FORMATS: readonly DiffFormat[] = ['text', 'markdown', 'json'];

export interface EnvironmentResult {
  name: string;
  diff: EnvironmentDiff;
  /** Capacity of both sides (undefined for a side where the environment does not exist). */
  capacity?: { base?: CapacitySummary; head?: CapacitySummary };
}

const MAX_VALUE = 160;

export function summaryLine({ name, diff }: EnvironmentResult): string {
  const immutable = immutableCount(diff);
  return (
    `${name}: ${diff.changed.length} changed, ${diff.added.length} added, ${diff.removed.length} removed` +
    (immutable ? `, ${immutable} immutable (see '!' lines)` : '')
  );
}

const show = (v: unknown) => preview(v, MAX_VALUE, 'undefined');

const multiline = (v: unknown): v is string => typeof v === 'string' && v.includes('\n');

/** `!` flags an immutable change, `>` says how a change is applied (a PostgreSQL parameter: reload or restart). */
type Mark = '+' | '-' | '~' | ' ' | '!' | '>';
/** One output line: a change mark and its text (text mode puts the indent first, Markdown's `diff` block the mark). */
type Line = [Mark, string];

/** The lines of one change. */
export function changeLines(c: Change): Line[] {
  if (c.redacted) {
    const mark: Mark = c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : '~';
    return [[mark, `${c.path}: (value ${c.kind}, not shown)`]];
  }
  switch (c.kind) {
    case 'added':
      return [['+', `${c.path}: ${show(c.new)}`]];
    case 'removed':
      return [['-', `${c.path}: ${show(c.old)}`]];
    case 'reordered':
      return [['~', `${c.path}: order ${(c.old as unknown[]).join(', ')} → ${(c.new as unknown[]).join(', ')}`]];
    default:
      if (multiline(c.old) || multiline(c.new)) {
        const hunks = lineDiff(String(c.old ?? ''), String(c.new ?? ''));
        return [
          ['~', `${c.path}:`],
          ...hunks.map((l): Line => (l.startsWith('@@') ? [' ', `  ${l}`] : [l[0] as Mark, `  ${l.slice(1)}`])),
        ];
      }
      return [['~', `${c.path}: ${show(c.old)} → ${show(c.new)}`]];
  }
}

/** One environment's diff: changed objects with their paths, then added, then removed objects. */
function bodyLines(diff: EnvironmentDiff): { depth: number; line: Line }[] {
  const lines: { depth: number; line: Line }[] = [];
  for (const { object, changes, immutable, notes } of diff.changed) {
    lines.push({ depth: 0, line: ['~', describe(object)] });
    for (const c of changes) {
      lines.push(...changeLines(c).map((line) => ({ depth: 1, line })));
      for (const f of immutable?.filter((x) => x.path === c.path) ?? []) {
        lines.push({ depth: 2, line: ['!', f.message] }, { depth: 2, line: ['!', `instead: ${f.instead}`] });
      }
      for (const n of notes?.filter((x) => x.path === c.path) ?? []) {
        lines.push({ depth: 2, line: ['>', n.message] });
      }
    }
  }
  for (const o of diff.added) lines.push({ depth: 0, line: ['+', describe(o)] });
  for (const o of diff.removed) lines.push({ depth: 0, line: ['-', describe(o)] });
  return lines;
}

const textLine = ({ depth, line: [mark, text] }: { depth: number; line: Line }) =>
  `${'    '.repeat(depth)}  ${mark} ${text}`;
const diffBlockLine = ({ depth, line: [mark, text] }: { depth: number; line: Line }) =>
  `${mark} ${'    '.repeat(depth)}${text}`;

export function formatText(results: readonly EnvironmentResult[]): string {
  return results.map((r) => [summaryLine(r), ...bodyLines(r.diff).map(textLine)].join('\n')).join('\n') + '\n';
}

export function formatMarkdown(results: readonly EnvironmentResult[]): string {
  const parts = ['## Manifest diff', '', ...results.map((r) => `- **${summaryLine(r)}**`), ''];
  for (const r of results) {
    parts.push(`<details${isEmpty(r.diff) ? '' : ' open'}><summary><b>${summaryLine(r)}</b></summary>`, '');
    if (!isEmpty(r.diff)) parts.push('```diff', ...bodyLines(r.diff).map(diffBlockLine), '```', '');
    if (r.capacity) parts.push(`Capacity of ${r.name}:`, '', formatCapacityMarkdown(r.capacity.base, r.capacity.head));
    parts.push('</details>', '');
  }
  return parts.join('\n');
}

export function formatJson(results: readonly EnvironmentResult[]): string {
  const environments = results.map((r) => ({
    name: r.name,
    summary: {
      changed: r.diff.changed.length,
      added: r.diff.added.length,
      removed: r.diff.removed.length,
      immutable: immutableCount(r.diff),
    },
    ...r.diff,
    ...(r.capacity ? { capacity: r.capacity } : {}),
  }));
  return `${JSON.stringify({ environments }, null, 2)}\n`;
}

export function formatDiff(format: DiffFormat, results: readonly EnvironmentResult[]): string {
  if (format === 'markdown') return formatMarkdown(results);
  if (format === 'json') return formatJson(results);
  return formatText(results);
}
