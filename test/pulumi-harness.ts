/**
 * Runs the Pulumi program (stacks/pulumi.ts) under Pulumi's runtime mocks: no
 * CLI, no cluster. Each run sets the mocks with the stack name, sets the stack
 * config (by default the one in Pulumi.<stack>.yaml) and evaluates the program
 * entry afresh, recording every RegisterResource request as the engine would
 * receive it (dependencies, protection, secrets).
 *
 * The SDK and the modules the entry imports are loaded once per test file, not
 * once per run (`jest.resetModules` and a re-import cost half a second a run).
 * That is sound because the SDK keeps a run's state in its store, which
 * `setMocks` resets (monitor, options, config, stack resource), each resource
 * registers with the monitor of the run that created it, and a run waits for
 * its own RPCs, failed or not, before the next one starts. pulumi-config.test.ts
 * runs different configs back to back and checks each sees only its own.
 */
import { transformSync } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as pulumiSdk from '@pulumi/pulumi';
import type {
  RegisterResourceOutputsRequest,
  RegisterResourceRequest,
  RegisterResourceResponse,
} from '@pulumi/pulumi/proto/resource_pb';
import { parse } from 'yaml';

import type { loadEnvironment } from '../stacks/environments';
import type { buildPlatform, KubeObject, synthObjects } from '../stacks/synth';

/** A serialized secret is `{ [SPECIAL_SIG]: SECRET_SIG, value }` (Pulumi's wire format). */
export const SPECIAL_SIG = '4dabf18193072939515e22adb298388d';
export const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';
export const LOAD_BALANCER_IP = '203.0.113.10';

export interface Registration {
  type: string;
  name: string;
  urn: string;
  custom: boolean;
  parent: string;
  provider: string;
  dependencies: string[];
  protect: boolean;
  retainOnDelete: boolean;
  additionalSecretOutputs: string[];
  ignoreChanges: string[];
  /** `customTimeouts` as registered (create/update), undefined when unset. */
  customTimeouts?: { create: string; update: string };
  /** Inputs with secrets unwrapped, as the provider receives them. */
  inputs: Record<string, unknown>;
  /** Inputs as serialized on the wire: secrets still wrapped in their signature. */
  wire: unknown;
}

export interface ProgramRun {
  registrations: Registration[];
  /** Resolved stack outputs (the program's exports). */
  outputs: Record<string, unknown>;
  /** Outputs the components registered with registerOutputs, as serialized. */
  componentOutputs: unknown[];
  /**
   * The model as the program loaded it (same module instances): expectations use
   * these, so an edit to a construct in the shared tree mid-run cannot split them.
   */
  model: {
    loadEnvironment: typeof loadEnvironment;
    synthObjects: typeof synthObjects;
    buildPlatform: typeof buildPlatform;
  };
}

export type StackConfig = Record<string, unknown>;

/** The Pulumi entry (`main` in Pulumi.yaml). */
const PROGRAM = join(__dirname, '..', 'stacks', 'pulumi.ts');

/** The `config:` block of Pulumi.<stack>.yaml, as the CLI would hand it to the program. */
export function stackFileConfig(stack: string): StackConfig {
  const file = parse(readFileSync(join(__dirname, '..', `Pulumi.${stack}.yaml`), 'utf8')) as { config?: StackConfig };
  return file.config ?? {};
}

/** The program's outputs, resolved (the `promiseOf` helper of Pulumi's testing examples). */
export function promiseOf<T>(output: pulumiSdk.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/**
 * Runs the program as stack `stack` with `config` (values as in a stack file;
 * keys under `secret` are passed as secret config). Rejects with the program's error.
 */
export async function runProgram(
  stack: string,
  config: StackConfig = stackFileConfig(stack),
  secretKeys: string[] = [],
): Promise<ProgramRun> {
  // The SDK stamps each promise it makes with `new Error().stack` (runtime/debuggable.js, for its
  // leak report): thousands a run. Under Jest each stack is source-mapped as it is made, which
  // cost about a tenth of a run's CPU; V8's own format (generated line numbers) costs next to nothing.
  const jestFormat = Error.prepareStackTrace;
  Error.prepareStackTrace = (error: Error, frames: NodeJS.CallSite[]) =>
    [String(error), ...frames.map((f) => `    at ${f.toString()}`)].join('\n');
  // Nor does it need the stacks themselves: no frames are captured during a run (about 6 % of a run's
  // CPU, A/B over 4 paired runs of pulumi.test and pulumi-config.test). Errors keep their messages.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return await runUnderMocks(stack, config, secretKeys);
  } finally {
    Error.stackTraceLimit = stackLimit;
    Error.prepareStackTrace = jestFormat;
  }
}

async function runUnderMocks(stack: string, config: StackConfig, secretKeys: string[]): Promise<ProgramRun> {
  const pulumi: typeof pulumiSdk = await import('@pulumi/pulumi');
  const registrations: Registration[] = [];
  const componentOutputs: unknown[] = [];

  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const state = { ...args.inputs };
        // What a cloud load balancer controller would report once the Service is up.
        if (args.type === 'kubernetes:core/v1:Service' && args.inputs.spec?.type === 'LoadBalancer') {
          state.status = { loadBalancer: { ingress: [{ ip: LOAD_BALANCER_IP }] } };
        }
        return { id: args.custom ? `${args.name}-id` : undefined, state };
      },
      call: (args) => args.inputs,
    },
    'fastnext',
    stack,
  );
  // The mock monitor hands newResource only type, name and inputs; wrap it to see the whole request.
  type Callback<T> = (err: unknown, response?: T) => void;
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: RegisterResourceRequest, cb: Callback<RegisterResourceResponse>): void;
    registerResourceOutputs(req: RegisterResourceOutputsRequest, cb: Callback<unknown>): void;
  };
  const registerResource = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, callback) =>
    registerResource(req, (err, response) => {
      if (response) {
        const wire = req.getObject()?.toJavaScript();
        registrations.push({
          type: req.getType(),
          name: req.getName(),
          urn: response.getUrn(),
          custom: req.getCustom(),
          parent: req.getParent(),
          provider: req.getProvider(),
          dependencies: req.getDependenciesList(),
          protect: req.getProtect() ?? false,
          retainOnDelete: req.getRetainondelete() ?? false,
          additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
          customTimeouts: timeoutsOf(req),
          ignoreChanges: req.getIgnorechangesList(),
          inputs: unwrapSecrets(wire ?? {}) as Record<string, unknown>,
          wire,
        });
      }
      callback(err, response);
    });
  const registerResourceOutputs = monitor.registerResourceOutputs.bind(monitor);
  monitor.registerResourceOutputs = (req, callback) => {
    componentOutputs.push(req.getOutputs()?.toJavaScript());
    registerResourceOutputs(req, callback);
  };

  const asStrings = Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
  pulumi.runtime.setAllConfig(asStrings, secretKeys);

  const waitForRPCs = () => (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  let program: Record<string, unknown>;
  try {
    program = evaluateProgram();
  } catch (e) {
    // What the program registered before it failed still lands in this run's monitor, not the next run's.
    await waitForRPCs().catch(() => undefined);
    throw e;
  }
  const outputs: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(program)) {
    outputs[key] = pulumi.Output.isInstance(value) ? await promiseOf(value) : value;
  }
  await waitForRPCs();
  const { loadEnvironment: load } = await import('../stacks/environments');
  const { synthObjects: synth, buildPlatform: build } = await import('../stacks/synth');
  return {
    registrations,
    outputs,
    componentOutputs,
    model: { loadEnvironment: load, synthObjects: synth, buildPlatform: build },
  };
}

/** The entry, transpiled once per test file (esbuild, as tools/run.js and Jest's transform do). */
let programSource: string | undefined;

/**
 * Evaluates the program entry afresh (the Pulumi CLI runs it once per process):
 * its source, transpiled, with its imports from the module registry, loaded once.
 */
function evaluateProgram(): Record<string, unknown> {
  programSource ??= transformSync(readFileSync(PROGRAM, 'utf8'), {
    loader: 'ts',
    format: 'cjs',
    target: 'node20',
    sourcefile: PROGRAM,
  }).code;
  const module = { exports: {} as Record<string, unknown> };
  const requireFromEntry = (id: string): unknown =>
    jest.requireActual(id.startsWith('.') ? join(dirname(PROGRAM), id) : id);
  const evaluate = new Function('exports', 'require', 'module', '__filename', '__dirname', programSource);
  evaluate(module.exports, requireFromEntry, module, PROGRAM, dirname(PROGRAM));
  return module.exports;
}

/** The error a program run fails with. */
export async function programError(stack: string, config: StackConfig): Promise<Error> {
  try {
    await runProgram(stack, config);
  } catch (e) {
    return e as Error;
  }
  throw new Error('the program did not fail');
}

export function synthError(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('the synth path did not fail');
}

/** `apps/v1` + `StatefulSet` -> `kubernetes:apps/v1:StatefulSet` (core group is `core/v1`). */
export function typeToken(o: KubeObject): string {
  const groupVersion = o.apiVersion.includes('/') ? o.apiVersion : `core/${o.apiVersion}`;
  return `kubernetes:${groupVersion}:${o.kind}`;
}

export const identity = (type: string, o: { metadata?: { namespace?: string; name?: string } }) =>
  `${type} ${o.metadata?.namespace ?? '(cluster)'}/${o.metadata?.name}`;

/** The Kubernetes objects a run registers (patches of live objects left out: `patchesOf`). */
export const kubeRegistrations = (run: ProgramRun) =>
  run.registrations.filter((r) => r.custom && r.type.startsWith('kubernetes:') && !r.type.endsWith('Patch'));

/** The patch resources a run registers (server-side apply patches of live objects). */
export const patchesOf = (run: ProgramRun) =>
  run.registrations.filter((r) => r.custom && r.type.startsWith('kubernetes:') && r.type.endsWith('Patch'));

/** Whether `value` contains `needle` anywhere outside a secret-wrapped subtree. */
export function containsPlaintext(value: unknown, needle: string): boolean {
  if (typeof value === 'string') return value.includes(needle);
  if (Array.isArray(value)) return value.some((v) => containsPlaintext(v, needle));
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record[SPECIAL_SIG] === SECRET_SIG) return false;
    return Object.values(record).some((v) => containsPlaintext(v, needle));
  }
  return false;
}

/** `value` with every secret wrapper replaced by the value it wraps (what the provider receives). */
export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record[SPECIAL_SIG] === SECRET_SIG) return unwrapSecrets(record.value);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

export const isSecretWrapped = (value: unknown) =>
  !!value && typeof value === 'object' && (value as Record<string, unknown>)[SPECIAL_SIG] === SECRET_SIG;

function timeoutsOf(req: RegisterResourceRequest): { create: string; update: string } | undefined {
  const t = req.getCustomtimeouts();
  return t && (t.getCreate() || t.getUpdate()) ? { create: t.getCreate(), update: t.getUpdate() } : undefined;
}
