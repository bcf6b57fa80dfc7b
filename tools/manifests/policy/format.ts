/**
 * Renders policy reports: human (grouped by object), JSON, and SARIF 2.1.0 for
 * GitHub code scanning. A report covers one environment; formats take several.
 */
import type { CheckInfo } from './types';
import { describe, type Finding, type PolicyReport } from './engine';

export type PolicyFormat = 'human' | 'json' | 'sarif';
export const POLICY_FORMATS: readonly PolicyFormat[] = ['human', 'json', 'sarif'];

export interface EnvironmentReport {
  /** Environment name, or the directory the objects came from. */
  name: string;
  report: PolicyReport;
  /** File a SARIF result points at (code scanning needs a path in the repo), e.g. `stacks/prod.ts`. */
  artifactUri?: string;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** One line per environment: `prod: 0 errors, 0 warnings in 57 objects (28 checks, 1 opt-out)`. */
export function summaryLine({ name, report }: EnvironmentReport): string {
  return `${name}: ${plural(report.errors, 'error')}, ${plural(report.warnings, 'warning')} in ${report.objects} objects (${report.checks.length} checks, ${plural(report.optOuts.length, 'opt-out')})`;
}

export function formatHuman(reports: readonly EnvironmentReport[]): string {
  const lines: string[] = [];
  for (const env of reports) {
    lines.push(`policy ${summaryLine(env)}`);
    // The fix of a check is printed once per environment: the explanation does not change per object.
    const fixShown = new Set<string>();
    const byObject = new Map<string, Finding[]>();
    for (const f of env.report.findings) {
      const key = describe(f.object);
      byObject.set(key, [...(byObject.get(key) ?? []), f]);
    }
    for (const [object, findings] of byObject) {
      lines.push(`  ${object}`);
      for (const f of findings) {
        lines.push(`    ${f.severity.padEnd(7)} ${f.check}: ${f.message}${f.path ? ` (at ${f.path})` : ''}`);
        if (!fixShown.has(f.check)) lines.push(`            fix: ${f.fix}`);
        fixShown.add(f.check);
      }
    }
    if (env.report.optOuts.length) {
      lines.push('  opt-outs:');
      for (const o of env.report.optOuts)
        lines.push(`    ${describe(o.object)} skips ${o.check}: ${JSON.stringify(o.reason)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function formatJson(reports: readonly EnvironmentReport[]): string {
  const environments = reports.map(({ name, report }) => ({
    name,
    objects: report.objects,
    errors: report.errors,
    warnings: report.warnings,
    findings: report.findings,
    optOuts: report.optOuts,
  }));
  return `${JSON.stringify({ checks: reports[0]?.report.checks ?? [], environments }, null, 2)}\n`;
}

const SARIF_LEVEL: Record<CheckInfo['severity'], string> = { error: 'error', warning: 'warning' };

/** SARIF 2.1.0: one run, one rule per check, one result per finding (opt-outs as suppressed results are not emitted). */
export function formatSarif(reports: readonly EnvironmentReport[]): string {
  const checks = reports[0]?.report.checks ?? [];
  const rules = checks.map((c) => ({
    id: c.id,
    name: c.id,
    shortDescription: { text: c.explanation },
    fullDescription: { text: `${c.explanation} Fix: ${c.fix}` },
    help: { text: `Fix: ${c.fix}` },
    defaultConfiguration: { level: SARIF_LEVEL[c.severity] },
  }));
  const results = reports.flatMap((env) =>
    env.report.findings.map((f) => ({
      ruleId: f.check,
      ruleIndex: Math.max(
        0,
        checks.findIndex((c) => c.id === f.check),
      ),
      level: SARIF_LEVEL[f.severity],
      message: {
        text: `${env.name}: ${describe(f.object)}: ${f.message}${f.path ? ` (at ${f.path})` : ''}. Fix: ${f.fix}`,
      },
      locations: [
        {
          physicalLocation: {
            artifactLocation: { uri: env.artifactUri ?? `stacks/${env.name}.ts` },
            region: { startLine: 1 },
          },
          logicalLocations: [
            { fullyQualifiedName: `${env.name}/${describe(f.object)}${f.path ? `/${f.path}` : ''}`, kind: 'object' },
          ],
        },
      ],
      // Stable across runs so code scanning tracks one alert per object and check, not per line.
      partialFingerprints: { fastnextObject: `${env.name}|${f.check}|${describe(f.object)}|${f.path ?? ''}` },
    })),
  );
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{ tool: { driver: { name: 'fastnext-policy', rules } }, results }],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}

export function formatPolicy(format: PolicyFormat, reports: readonly EnvironmentReport[]): string {
  if (format === 'json') return formatJson(reports);
  if (format === 'sarif') return formatSarif(reports);
  return formatHuman(reports);
}
