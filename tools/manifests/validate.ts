/**
 * `npm run validate [-- --env prod] [--dir dist/prod [--production]] [--format human|json|sarif] [--output file]`:
 * 1. strict schema validation of every synthesized object against the
 *    Kubernetes 1.28 API (types, enums, required fields, unknown fields);
 * 2. the policy checks of tools/manifests/policy (docs/ci.md lists them), on the sets
 *    whose schema is valid.
 * Exit 1 on any schema problem or error-severity finding.
 *
 * With --output, the report in --format goes to that file and the human report
 * to stdout (one run gives CI both a log and a SARIF file).
 */
import * as fs from 'fs';
import { parseArgs } from 'util';
import { environmentNames, loadEnvironment } from '../../stacks/environments';
import { readManifestDir } from '../../stacks/manifests';
import { type KubeObject, synthObjects } from '../../stacks/synth';
import { runPolicy } from './policy/engine';
import { type EnvironmentReport, POLICY_FORMATS, type PolicyFormat, formatHuman, formatPolicy } from './policy/format';
import { isCustomResource } from './crd-check';
import { checkObjects } from './schema-check';

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      env: { type: 'string', multiple: true },
      dir: { type: 'string', multiple: true },
      format: { type: 'string', default: 'human' },
      output: { type: 'string' },
      // For --dir: the environment's `production` flag is not in the YAML (else the namespace label decides).
      production: { type: 'boolean' },
    },
  });
  const format = values.format as PolicyFormat;
  if (!POLICY_FORMATS.includes(format)) {
    console.error(`validate: --format '${values.format}' is not one of ${POLICY_FORMATS.join(', ')}`);
    return 2;
  }
  // Machine-readable output on stdout must stay parseable: progress goes to stderr then.
  const log = format === 'human' || values.output ? console.log : console.error;
  const sets: { label: string; objects: KubeObject[]; production?: boolean; artifactUri: string }[] = values.dir
    ? values.dir.map((d) => ({ label: d, objects: readManifestDir(d), production: values.production, artifactUri: d }))
    : (values.env ?? environmentNames()).map((e) => {
        const config = loadEnvironment(e);
        return {
          label: e,
          objects: synthObjects(config),
          production: config.production,
          artifactUri: `stacks/${e}.ts`,
        };
      });
  let failed = false;
  const reports: EnvironmentReport[] = [];
  for (const { label, objects, production, artifactUri } of sets) {
    const problems = checkObjects(objects);
    if (problems.length) {
      failed = true;
      console.error(`${label}: ${problems.length} schema problem(s); policy checks skipped`);
      for (const p of problems) console.error(`  ${p.object}: ${p.path}: ${p.message}`);
      continue;
    }
    const crds = objects.some((o) => isCustomResource(o.apiVersion)) ? ' and the prometheus-operator CRDs' : '';
    log(`${label}: ${objects.length} objects valid against the Kubernetes 1.28 API${crds} (strict)`);
    const report = runPolicy(objects, { production });
    if (report.errors > 0) failed = true;
    reports.push({ name: label, report, artifactUri });
  }
  if (values.output) {
    fs.writeFileSync(values.output, formatPolicy(format, reports));
    process.stdout.write(formatHuman(reports));
  } else {
    process.stdout.write(formatPolicy(format, reports));
  }
  return failed ? 1 : 0;
}
