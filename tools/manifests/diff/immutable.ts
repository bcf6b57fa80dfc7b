/**
 * Changes Kubernetes refuses in place, for every kind the platform emits. The
 * API server answers `kubectl apply` with "field is immutable" (or, for a
 * StatefulSet, "updates to statefulset spec for fields other than 'replicas',
 * 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy'
 * and 'minReadySeconds' are forbidden"); the Pulumi provider plans a
 * replacement instead, which a protected object turns into a failed update.
 *
 * Each rule names the kind, the changed paths it covers (as the object diff
 * writes them), why, and what to do instead.
 */
import { parseQuantity } from '../../../stacks/config';
import type { KubeObject } from '../../k8s/objects';
import type { Change } from './object-diff';

export interface ImmutableRule {
  readonly kind: string;
  /** Paths of the object diff this rule covers. */
  readonly path: RegExp;
  /** Paths under `path` that are mutable after all. */
  readonly except?: RegExp;
  /** What Pulumi does with the change. @default 'replace' */
  readonly pulumi?: 'replace' | 'patch-claims';
  readonly instead: string;
}

/** A flagged change: the rule's verdict on one change of one object. */
export interface ImmutableFinding {
  readonly path: string;
  readonly message: string;
  readonly instead: string;
}

const RESIZE =
  'grow the live claims: `pulumi up` patches them (the StatefulSet ignores its claim templates), or ' +
  '`npm run resize -- --env <env> [--apply]` for kubectl (patch each PVC, wait for the resize, re-create the ' +
  'StatefulSet with --cascade=orphan); see docs/day-2.md';
const ORPHAN =
  '`kubectl delete statefulset <name> --cascade=orphan` (its pods and claims stay), then apply: the new ' +
  'StatefulSet adopts them; with Pulumi, `pulumi state unprotect` and replace it the same way (docs/day-2.md)';

export const IMMUTABLE_RULES: readonly ImmutableRule[] = [
  {
    kind: 'StatefulSet',
    path: /^spec\.volumeClaimTemplates\[name=[^\]]+\]\.spec\.resources\.requests\.storage$/,
    pulumi: 'patch-claims',
    instead: RESIZE,
  },
  {
    kind: 'StatefulSet',
    path: /^spec\./,
    except: /^spec\.(replicas|ordinals|template|updateStrategy|persistentVolumeClaimRetentionPolicy|minReadySeconds)\b/,
    instead: ORPHAN,
  },
  {
    kind: 'Deployment',
    path: /^spec\.selector\b/,
    instead: 'create a Deployment under a new name, move traffic, then delete the old one',
  },
  {
    kind: 'Job',
    path: /^spec\.(template|selector|completions|completionMode)\b/,
    instead: 'give the Job a new name (the platform names Jobs by a hash of their spec: `jobNameFor`)',
  },
  {
    kind: 'Service',
    path: /^spec\.(clusterIP|clusterIPs)\b/,
    instead: 'a new Service under another name (clients move to it), or delete and re-create it (a short outage)',
  },
  {
    kind: 'PersistentVolumeClaim',
    path: /^spec\.(storageClassName|accessModes|volumeMode|volumeName|selector|dataSource|dataSourceRef)\b/,
    instead: 'a new claim plus a copy or a backup restore of the data (docs/day-2.md)',
  },
  {
    kind: 'RoleBinding',
    path: /^roleRef\b/,
    instead: 'a RoleBinding under a new name, then delete the old one',
  },
  {
    kind: 'ClusterRoleBinding',
    path: /^roleRef\b/,
    instead: 'a ClusterRoleBinding under a new name, then delete the old one',
  },
];

/** A claim template's storage size before and after, in bytes (NaN when unreadable). */
function sizes(c: Change): [number, number] {
  return [parseQuantity(String(c.old)), parseQuantity(String(c.new))];
}

/** The immutable changes among one object's changes. */
export function immutableFindings(kind: string, name: string, changes: readonly Change[]): ImmutableFinding[] {
  const findings: ImmutableFinding[] = [];
  for (const c of changes) {
    if (c.kind === 'reordered') continue;
    const rule = IMMUTABLE_RULES.find(
      (r) => r.kind === kind && r.path.test(c.path) && !(r.except && r.except.test(c.path)),
    );
    if (!rule) continue;
    if (rule.pulumi === 'patch-claims') {
      const [before, after] = sizes(c);
      if (after < before) {
        findings.push({
          path: c.path,
          message: `immutable: a volume cannot shrink (${String(c.old)} → ${String(c.new)}); kubectl apply and Pulumi will both fail`,
          instead: 'keep the size; to use less, move the data to a new, smaller volume (backup and restore)',
        });
        continue;
      }
      findings.push({
        path: c.path,
        message: `immutable: kubectl apply will fail; Pulumi ignores it on ${kind}/${name} and patches the live claims`,
        instead: rule.instead,
      });
      continue;
    }
    findings.push({
      path: c.path,
      message: `immutable: kubectl apply will fail; Pulumi will replace ${kind}/${name}`,
      instead: rule.instead,
    });
  }
  return findings;
}

/** Claim templates that would shrink from `before` to `after`: one line each, naming both sizes. */
export function shrunkClaims(before: readonly KubeObject[], after: readonly KubeObject[]): string[] {
  type Templates = {
    volumeClaimTemplates?: { metadata: { name: string }; spec?: { resources?: { requests?: { storage?: string } } } }[];
  };
  const sizeOf = (o: KubeObject) =>
    new Map(
      ((o.spec as Templates | undefined)?.volumeClaimTemplates ?? []).map((t) => [
        t.metadata.name,
        t.spec?.resources?.requests?.storage ?? '',
      ]),
    );
  const out: string[] = [];
  for (const o of after.filter((x) => x.kind === 'StatefulSet')) {
    const old = before.find((b) => b.kind === 'StatefulSet' && b.metadata.name === o.metadata.name);
    if (!old) continue;
    const was = sizeOf(old);
    for (const [template, size] of sizeOf(o)) {
      const prev = was.get(template);
      if (prev && parseQuantity(size) < parseQuantity(prev)) {
        out.push(`StatefulSet ${o.metadata.name}, claim template '${template}': ${prev} -> ${size}`);
      }
    }
  }
  return out;
}
