/**
 * A model of `@pulumi/kubernetes`' await logic, run as a simulated rollout over
 * the resources a Pulumi program registers (their objects and `dependsOn`).
 *
 * Written from the provider's source (provider/pkg/await/: awaiters.go,
 * service.go, deployment.go, statefulset.go, job.go), v4:
 * - Service: headless (`clusterIP: None`) and ExternalName are done at once;
 *   any other waits until its Endpoints have subsets, i.e. pods it selects
 *   exist (we ask for ready pods: stricter than the code, and what the docs
 *   say), then ~10 s to settle; a LoadBalancer also waits for
 *   `status.loadBalancer.ingress` from the cloud's controller.
 * - Deployment: the new ReplicaSet's pods are available (rollout complete).
 * - StatefulSet: replicas, ready and current replicas equal `spec.replicas`,
 *   currentRevision == updateRevision.
 * - DaemonSet: every scheduled pod ready.
 * - Job: the `Complete` condition (a `Failed` one fails the update).
 * - PersistentVolumeClaim: `Bound`, or `Pending` under WaitForFirstConsumer;
 *   we emit none (StatefulSets make theirs), and a provisioner binds at once here.
 * - Ingress: its backend Services exist and the controller reports an address.
 * - Secret: only `kubernetes.io/service-account-token` waits (for its data).
 * - Everything else (ConfigMap, ServiceAccount on >= 1.24, RBAC, NetworkPolicy,
 *   PDB, HPA, CronJob, Namespace, custom resources such as HTTPRoute): no await.
 * - `pulumi.com/skipAwait: "true"` skips the await of any kind.
 * Updates run the same awaiter as creates.
 *
 * Pods are modelled per controller: they start once what they mount or read
 * exists (ServiceAccount, ConfigMaps, Secrets, a Secret's generator Job done),
 * and are ready once the Services their env names are reachable and the
 * runtime needs of `RuntimeNeed` hold. One step is one transition anywhere
 * (a resource created, pods started, pods ready, an await satisfied), so the
 * critical path's length counts the waits of a fresh `pulumi up`.
 */
import {
  templateSelector,
  annotationList,
  mapSelects,
  podReferences,
  podTemplateOf,
  selects,
  serviceHostsOf,
  specOf,
  type LabelSelector,
  type Workload,
} from '../../k8s/objects';
import { CREATES_SECRETS_ANNOTATION } from '../../../constructs/core/generated-secret';
import type { KubeObject } from '../../../stacks/synth';

export const SKIP_AWAIT_ANNOTATION = 'pulumi.com/skipAwait';

/** One registered Kubernetes resource: its object and the ids it depends on. */
export interface ModelResource {
  readonly id: string;
  readonly object: KubeObject;
  readonly dependsOn: readonly string[];
}

/**
 * A need of our own pods that no manifest field states: pods matched by
 * `pods` are ready (or, for a Job, complete) only once what `needs` matches
 * reaches `state`.
 */
export interface RuntimeNeed {
  readonly pods: LabelSelector;
  readonly needs: { readonly pods: LabelSelector; readonly state: 'started' | 'ready' | 'complete' };
  readonly why: string;
}

export interface ModelOptions {
  readonly runtimeNeeds?: readonly RuntimeNeed[];
  /** Whether a cloud load-balancer controller assigns addresses. @default true */
  readonly loadBalancerController?: boolean;
}

/** A point in the rollout: an event of a resource or of a controller's pods. */
export type Phase = 'created' | 'ready' | 'pods started' | 'pods ready';
export interface RolloutEvent {
  readonly id: string;
  readonly phase: Phase;
  readonly step: number;
  /** The event this one waited for last (undefined: it waited for nothing). */
  readonly after?: string;
}

export interface Blocked {
  readonly id: string;
  readonly phase: Phase;
  readonly waitingFor: readonly string[];
}

export interface RolloutResult {
  /** Events by `${id} ${phase}`, in the order they happened. */
  readonly events: ReadonlyMap<string, RolloutEvent>;
  /** Resources that never became ready, with what they wait for. */
  readonly blocked: readonly Blocked[];
  /** Waits-for cycles among the blocked resources (each a list of `${id} ${phase}`). */
  readonly cycles: readonly string[][];
  /** Steps until nothing changes. */
  readonly steps: number;
  /** The chain of waits that ends last. */
  readonly criticalPath: readonly RolloutEvent[];
}

const eventKey = (id: string, phase: Phase) => `${id} ${phase}`;

interface ServiceSpec {
  selector?: Record<string, string>;
  clusterIP?: string;
  type?: string;
}

/** Pods of a controller that runs them at deploy time (CronJobs run later; zero replicas run none). */
function runsPods(o: KubeObject): boolean {
  if (!['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind)) return false;
  const replicas = specOf<{ replicas?: number }>(o).replicas;
  return replicas === undefined || replicas > 0;
}

/** What the state of the world is at one step, and how it moves. */
class Rollout {
  readonly events = new Map<string, RolloutEvent>();
  private readonly namespace: string;

  constructor(
    private readonly resources: readonly ModelResource[],
    private readonly options: ModelOptions,
    /** Resources already in place (an update run): created, ready, pods ready at step 0. */
    settled: readonly string[],
    /** Controllers being updated: their old pods serve from step 0; their await needs new pods. */
    private readonly updating: ReadonlySet<string> = new Set(),
  ) {
    this.namespace = resources.find((r) => r.object.kind === 'Namespace')?.object.metadata.name ?? '';
    for (const id of settled) {
      for (const phase of ['created', 'ready', 'pods started', 'pods ready'] as const) {
        this.events.set(eventKey(id, phase), { id, phase, step: 0 });
      }
    }
    for (const id of updating) {
      for (const phase of ['pods started', 'pods ready'] as const) {
        this.events.set(eventKey(id, phase), { id, phase, step: 0 });
      }
    }
  }

  has(id: string, phase: Phase): boolean {
    return this.events.has(eventKey(id, phase));
  }

  private ofKind(kind: string, name: string): ModelResource | undefined {
    return this.resources.find((r) => r.object.kind === kind && r.object.metadata.name === name);
  }

  /** Controllers whose pod templates a selector matches. */
  private controllersSelected(match: (labels: Record<string, string>) => boolean): ModelResource[] {
    return this.resources.filter((r) => {
      const w = podTemplateOf(r.object);
      return w !== undefined && runsPods(r.object) && match(w.labels);
    });
  }

  /** Requirements of one transition, as event keys (missing requirements keep it waiting). */
  requirements(r: ModelResource, phase: Phase): string[] | 'never' {
    const o = r.object;
    const w = podTemplateOf(o);
    switch (phase) {
      case 'created':
        return r.dependsOn.map((d) => eventKey(d, 'ready'));
      case 'pods started':
        return [eventKey(r.id, 'created'), ...this.startNeeds(w!)];
      case 'pods ready':
        return [eventKey(r.id, 'pods started'), ...this.readyNeeds(r, w!)];
      case 'ready': {
        const awaited = this.awaitNeeds(r);
        return awaited === 'never' ? 'never' : [eventKey(r.id, 'created'), ...awaited];
      }
    }
  }

  /** What pods need to start: what they mount or read. */
  private startNeeds(w: Workload): string[] {
    const needs: string[] = [];
    for (const ref of podReferences(w)) {
      if (ref.kind === 'PersistentVolumeClaim') continue; // claim templates: made by the StatefulSet
      const direct = this.ofKind(ref.kind, ref.name);
      if (direct) {
        needs.push(eventKey(direct.id, 'ready'));
        continue;
      }
      const creator =
        ref.kind === 'Secret' &&
        this.resources.find(
          (c) => c.object.kind === 'Job' && annotationList(c.object, CREATES_SECRETS_ANNOTATION).includes(ref.name),
        );
      // Neither in the program nor generated: an external Secret, outside this model.
      if (creator) needs.push(eventKey(creator.id, 'ready'));
    }
    return needs;
  }

  /** What started pods need to become ready (a Job: to complete). */
  private readyNeeds(r: ModelResource, w: Workload): string[] {
    const needs: string[] = [];
    for (const host of serviceHostsOf(w, this.namespace)) {
      const service = this.ofKind('Service', host);
      if (!service) continue;
      needs.push(eventKey(service.id, 'created')); // DNS answers once the Service exists
      const spec = specOf<ServiceSpec>(service.object);
      // A cluster IP forwards to ready endpoints only: a client of it needs a ready backend.
      // A headless name lists peers; whether the pod needs them is stated in `runtimeNeeds`.
      if (spec.clusterIP === 'None') continue;
      for (const c of this.controllersSelected((l) => mapSelects(templateSelector(service.object), l))) {
        if (c.id !== r.id) needs.push(eventKey(c.id, 'pods ready'));
      }
    }
    for (const need of this.options.runtimeNeeds ?? []) {
      if (!selects(need.pods, w.labels)) continue;
      for (const c of this.controllersSelected((l) => selects(need.needs.pods, l))) {
        if (c.id === r.id) continue;
        needs.push(eventKey(c.id, need.needs.state === 'started' ? 'pods started' : 'pods ready'));
      }
    }
    return needs;
  }

  /** The provider's await condition for a resource. */
  private awaitNeeds(r: ModelResource): string[] | 'never' {
    const o = r.object;
    if (o.metadata.annotations?.[SKIP_AWAIT_ANNOTATION] === 'true') return [];
    switch (o.kind) {
      case 'Deployment':
      case 'StatefulSet':
      case 'DaemonSet':
      case 'Job': {
        if (!runsPods(o)) return [];
        if (!this.updating.has(r.id)) return [eventKey(r.id, 'pods ready')];
        // A rollout: new pods start and become ready as fresh ones would.
        const w = podTemplateOf(o)!;
        return [...this.startNeeds(w), ...this.readyNeeds(r, w)];
      }
      case 'Service': {
        const spec = specOf<ServiceSpec>(o);
        if (spec.clusterIP === 'None' || spec.type === 'ExternalName') return [];
        if (spec.type === 'LoadBalancer' && this.options.loadBalancerController === false) return 'never';
        const backends = this.controllersSelected((l) => mapSelects(templateSelector(o), l)).filter(
          (c) => c.object.kind !== 'Job',
        );
        if (backends.length === 0) return 'never';
        return backends.map((c) => eventKey(c.id, 'pods ready'));
      }
      case 'Ingress': {
        const names = JSON.stringify(o.spec ?? {}).match(/"service":\{"name":"([^"]+)"/g) ?? [];
        return names
          .map((m) => this.ofKind('Service', m.replace(/.*"name":"/, '').replace(/"$/, '')))
          .map((s) => (s ? eventKey(s.id, 'ready') : 'missing'))
          .filter((k) => k !== 'missing');
      }
      default:
        return [];
    }
  }

  /** Transitions possible from the current state, each with the requirement it waited for last. */
  nextTransitions(step: number): RolloutEvent[] {
    const next: RolloutEvent[] = [];
    for (const r of this.resources) {
      const phases: Phase[] =
        podTemplateOf(r.object) && runsPods(r.object)
          ? ['created', 'pods started', 'pods ready', 'ready']
          : ['created', 'ready'];
      for (const phase of phases) {
        if (this.has(r.id, phase) || next.some((e) => e.id === r.id && e.phase === phase)) continue;
        const reqs = this.requirements(r, phase);
        if (reqs === 'never' || !reqs.every((k) => this.events.has(k))) continue;
        const last = reqs.reduce<RolloutEvent | undefined>((latest, k) => {
          const e = this.events.get(k)!;
          return !latest || e.step > latest.step ? e : latest;
        }, undefined);
        next.push({ id: r.id, phase, step, after: last && eventKey(last.id, last.phase) });
        // Kinds without an await are done the moment they are created.
        if (phase === 'created' && this.awaitNeeds(r).length === 0 && this.awaitNeeds(r) !== 'never') {
          next.push({ id: r.id, phase: 'ready', step, after: eventKey(r.id, 'created') });
        }
      }
    }
    return next;
  }

  /** Why each resource that never became ready is waiting. */
  blocked(): Blocked[] {
    const out: Blocked[] = [];
    for (const r of this.resources) {
      if (this.has(r.id, 'ready')) continue;
      const phases: Phase[] =
        podTemplateOf(r.object) && runsPods(r.object)
          ? ['created', 'pods started', 'pods ready', 'ready']
          : ['created', 'ready'];
      const phase = phases.find((p) => !this.has(r.id, p))!;
      const reqs = this.requirements(r, phase);
      out.push({
        id: r.id,
        phase,
        waitingFor:
          reqs === 'never' ? ['(never: nothing can satisfy its await)'] : reqs.filter((k) => !this.events.has(k)),
      });
    }
    return out;
  }
}

/** Cycles in the waits-for graph of blocked transitions. */
function waitCycles(blocked: readonly Blocked[]): string[][] {
  const edges = new Map(blocked.map((b) => [eventKey(b.id, b.phase), b.waitingFor]));
  // A blocked resource waits on earlier phases of others too: follow each missing key to its own wait.
  const next = (key: string): string[] => {
    if (edges.has(key)) return [...edges.get(key)!];
    const [id] = key.split(' ');
    const b = blocked.find((x) => x.id === id);
    return b ? [eventKey(b.id, b.phase)] : [];
  };
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const stack: string[] = [];
  const visit = (key: string) => {
    const at = stack.indexOf(key);
    if (at >= 0) {
      const cycle = stack.slice(at);
      const id = [...cycle].sort().join('|');
      if (!cycles.some((c) => [...c].sort().join('|') === id)) cycles.push([...cycle, key]);
      return;
    }
    if (seen.has(key)) return;
    seen.add(key);
    stack.push(key);
    for (const n of next(key)) visit(n);
    stack.pop();
  };
  for (const key of edges.keys()) visit(key);
  return cycles;
}

function run(
  resources: readonly ModelResource[],
  options: ModelOptions,
  settled: readonly string[],
  updating: ReadonlySet<string> = new Set(),
): RolloutResult {
  const rollout = new Rollout(resources, options, settled, updating);
  let step = 0;
  for (;;) {
    const next = rollout.nextTransitions(step + 1);
    if (next.length === 0) break;
    step += 1;
    for (const e of next) rollout.events.set(eventKey(e.id, e.phase), e);
  }
  const blocked = rollout.blocked();
  const last = [...rollout.events.values()].reduce<RolloutEvent | undefined>(
    (a, e) => (!a || e.step > a.step ? e : a),
    undefined,
  );
  const criticalPath: RolloutEvent[] = [];
  for (let e = last; e && e.step > 0; e = e.after ? rollout.events.get(e.after) : undefined) criticalPath.unshift(e);
  return { events: rollout.events, blocked, cycles: waitCycles(blocked), steps: step, criticalPath };
}

/** A fresh `pulumi up`: nothing exists yet. */
export function simulateCreate(resources: readonly ModelResource[], options: ModelOptions = {}): RolloutResult {
  return run(resources, options, []);
}

export interface UpdatePlan {
  readonly created: string[];
  readonly updated: string[];
  readonly deleted: string[];
  /** Changes Kubernetes refuses in place (a changed Job under the same name). */
  readonly refused: string[];
  readonly rollout: RolloutResult;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * A `pulumi up` from `before` to `after`: unchanged resources are in place and
 * wait for nothing; changed ones are updated and run their await again, after
 * what they depend on; new ones are created. Old pods of an updated controller
 * keep serving during its rollout (maxUnavailable 0 / one pod at a time), so
 * other pods that need them stay ready.
 */
export function simulateUpdate(
  before: readonly ModelResource[],
  after: readonly ModelResource[],
  options: ModelOptions = {},
): UpdatePlan {
  const old = new Map(before.map((r) => [r.id, r]));
  const created: string[] = [];
  const updated: string[] = [];
  const refused: string[] = [];
  const settled: string[] = [];
  for (const r of after) {
    const prev = old.get(r.id);
    if (!prev) created.push(r.id);
    else if (sameJson(prev.object, r.object)) settled.push(r.id);
    else if (r.object.kind === 'Job' && !sameJson(prev.object.spec, r.object.spec)) refused.push(r.id);
    else updated.push(r.id);
  }
  const deleted = before.filter((r) => !after.some((a) => a.id === r.id)).map((r) => r.id);
  const rollout = run(
    after,
    options,
    settled,
    new Set(updated.filter((id) => old.get(id) && podTemplateOf(old.get(id)!.object))),
  );
  return { created, updated, deleted, refused, rollout };
}

/** The critical path as a table (one line per event). */
export function formatCriticalPath(result: RolloutResult): string {
  const lines = result.criticalPath.map((e) => `| ${String(e.step).padStart(4)} | ${e.id} | ${e.phase} |`);
  return ['| step | resource | event |', '|---|---|---|', ...lines].join('\n');
}
