/**
 * Runs every policy check over a set of objects and applies the per-object
 * opt-outs (`fastnext.io/policy-skip.<check-id>: "<reason>"`), which the
 * report lists so a reviewer sees each one.
 */
import { AVAILABILITY_CHECKS } from './checks/availability';
import { CONTAINER_CHECKS } from './checks/containers';
import { DATABASE_TLS_CHECKS } from './checks/database-tls';
import { NETWORK_CHECKS } from './checks/network';
import { REFERENCE_CHECKS } from './checks/references';
import { SECURITY_CHECKS } from './checks/security';
import type { KubeObject } from '../../k8s/objects';
import {
  type Check,
  type CheckInfo,
  type PolicyOptions,
  type Severity,
  PolicyContext,
  SKIP_ANNOTATION_PREFIX,
} from './types';

/** Every check, in report order. */
export const CHECKS: readonly Check[] = [
  ...CONTAINER_CHECKS,
  ...SECURITY_CHECKS,
  ...AVAILABILITY_CHECKS,
  ...NETWORK_CHECKS,
  ...REFERENCE_CHECKS,
  ...DATABASE_TLS_CHECKS,
];

/** Reported when an opt-out annotation names no known check or gives no reason; it cannot itself be skipped. */
export const SKIP_VALID: CheckInfo = {
  id: 'policy-skip-valid',
  severity: 'error',
  explanation:
    'An opt-out annotation names an existing check and gives a reason, so every exception is deliberate and explained.',
  fix: `Write ${SKIP_ANNOTATION_PREFIX}<check-id>: "<why this object is an exception>" with a check id from the report.`,
};

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface Finding {
  check: string;
  severity: Severity;
  object: ObjectRef;
  /** JSON path inside the object. */
  path?: string;
  message: string;
  fix: string;
}

export interface OptOut {
  check: string;
  object: ObjectRef;
  reason: string;
}

export interface PolicyReport {
  /** Number of objects checked. */
  objects: number;
  /** Every check that ran (for SARIF rules and the summary). */
  checks: readonly CheckInfo[];
  findings: Finding[];
  optOuts: OptOut[];
  errors: number;
  warnings: number;
}

export function objectRef(o: KubeObject): ObjectRef {
  const { apiVersion, kind } = o;
  const { name, namespace } = o.metadata;
  return namespace === undefined ? { apiVersion, kind, name } : { apiVersion, kind, namespace, name };
}

/** Identity of an object: apiVersion, kind, namespace and name. */
export const keyOf = (r: ObjectRef) => `${r.apiVersion}|${r.kind}|${r.namespace ?? ''}|${r.name}`;

/** `Kind namespace/name`, as reports print an object. */
export const describe = (r: ObjectRef) => `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;

/** Runs `checks` (default: all) over `objects`. Pure: the same objects give the same report. */
export function runPolicy(
  objects: readonly KubeObject[],
  options: PolicyOptions = {},
  checks: readonly Check[] = CHECKS,
): PolicyReport {
  const ctx = new PolicyContext(objects, options);
  const known = new Set(CHECKS.map((c) => c.id));
  const findings: Finding[] = [];
  const optOuts: OptOut[] = [];
  // Opt-outs by object key, then check id.
  const skips = new Map<string, Map<string, string>>();

  for (const o of objects) {
    const ref = objectRef(o);
    for (const [key, value] of Object.entries(o.metadata.annotations ?? {})) {
      if (!key.startsWith(SKIP_ANNOTATION_PREFIX)) continue;
      const check = key.slice(SKIP_ANNOTATION_PREFIX.length);
      const reason = String(value).trim();
      const problem = !known.has(check) ? `names unknown check '${check}'` : !reason ? 'gives no reason' : undefined;
      if (problem) {
        findings.push({
          check: SKIP_VALID.id,
          severity: 'error',
          object: ref,
          path: `metadata.annotations["${key}"]`,
          message: `opt-out ${problem}`,
          fix: SKIP_VALID.fix,
        });
        continue;
      }
      if (!skips.has(keyOf(ref))) skips.set(keyOf(ref), new Map());
      skips.get(keyOf(ref))?.set(check, reason);
      optOuts.push({ check, object: ref, reason });
    }
  }

  for (const check of checks) {
    for (const v of check.run(ctx)) {
      const ref = objectRef(v.object);
      if (skips.get(keyOf(ref))?.has(check.id)) continue;
      findings.push({
        check: check.id,
        severity: check.severity,
        object: ref,
        path: v.path,
        message: v.message,
        fix: check.fix,
      });
    }
  }

  return {
    objects: objects.length,
    checks: [...checks.map(({ id, severity, explanation, fix }) => ({ id, severity, explanation, fix })), SKIP_VALID],
    findings,
    optOuts,
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
  };
}
