/**
 * Strict validation of Kubernetes objects against the 1.28 API, as
 * kubeconform -strict does, with no download:
 * - types, enums and required fields: the compiled JSON-schema validators of
 *   `kubernetes-models`;
 * - unknown fields: the field maps of `@kubernetes/client-node` 0.20.0, which
 *   is generated from the release-1.28 OpenAPI document (kubernetes-models'
 *   schemas allow extra fields).
 */

/** One problem in one object. */
export interface SchemaProblem {
  /** `Kind namespace/name` */
  readonly object: string;
  /** JSON path inside the object, e.g. `spec.template.spec.containers[0].imagePullPolicy`. */
  readonly path: string;
  readonly message: string;
}

interface AttributeType {
  name: string;
  baseName: string;
  type: string;
}
type ModelClass = { attributeTypeMap: AttributeType[] };

const MODEL_DIR = '@kubernetes/client-node/dist/gen/model/';
const modelCache = new Map<string, ModelClass | undefined>();

/**
 * The client-node model class of a type name (e.g. V1Container), loaded on
 * demand: requiring the package root loads its whole API client (~0.3 s).
 */
function model(type: string): ModelClass | undefined {
  if (!/^[A-Za-z0-9]+$/.test(type)) return undefined;
  if (!modelCache.has(type)) {
    let cls: ModelClass | undefined;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(`${MODEL_DIR}${type.charAt(0).toLowerCase()}${type.slice(1)}`) as Record<string, ModelClass>;
      cls = mod[type];
    } catch {
      cls = undefined;
    }
    modelCache.set(type, cls);
  }
  return modelCache.get(type);
}

export interface ObjectLike {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown };
  [field: string]: unknown;
}

function describe(obj: ObjectLike): string {
  const ns = typeof obj.metadata?.namespace === 'string' ? `${obj.metadata.namespace}/` : '';
  return `${String(obj.kind)} ${ns}${String(obj.metadata?.name)}`;
}

/** client-node class name for an apiVersion + kind, e.g. apps/v1 Deployment -> V1Deployment. */
function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? '';
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

const MAP_TYPE = /^\{ \[key: string\]: (.+); \}$/;
const ARRAY_TYPE = /^Array<(.+)>$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reports every field of `value` that the 1.28 API does not define for `type`. */
function unknownFields(value: unknown, type: string, path: string, out: { path: string; message: string }[]): void {
  if (value === null || value === undefined) return;
  const arr = ARRAY_TYPE.exec(type);
  if (arr) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownFields(item, arr[1], `${path}[${i}]`, out));
    return;
  }
  const map = MAP_TYPE.exec(type);
  if (map) {
    if (isObject(value)) for (const [k, v] of Object.entries(value)) unknownFields(v, map[1], `${path}.${k}`, out);
    return;
  }
  const cls = model(type);
  if (!cls || !Array.isArray(cls.attributeTypeMap) || !isObject(value)) return;
  const fields = new Map(cls.attributeTypeMap.map((a) => [a.baseName, a.type]));
  for (const [key, child] of Object.entries(value)) {
    const childType = fields.get(key);
    const childPath = path ? `${path}.${key}` : key;
    if (childType === undefined) {
      out.push({
        path: childPath,
        message: `unknown field '${key}' (not in the Kubernetes 1.28 ${type}; allowed: ${[...fields.keys()].join(', ')})`,
      });
    } else {
      unknownFields(child, childType, childPath, out);
    }
  }
}

function jsonPointerToPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('')
    .replace(/^\./, '');
}

type Validatable = { validate(): void };

/** kubernetes-models class for apiVersion + kind, or undefined. */
function typedModel(apiVersion: string, kind: string): (new (data: object) => Validatable) | undefined {
  if (!/^[a-z0-9.]+(\/[a-z0-9]+)?$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind)) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(`kubernetes-models/${apiVersion}/${kind}`) as Record<string, new (data: object) => Validatable>;
    return mod[kind];
  } catch {
    return undefined;
  }
}

/** Validates one object; returns its problems (empty when valid). */
export function checkObject(obj: ObjectLike): SchemaProblem[] {
  const object = describe(obj);
  if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
    return [{ object, path: '(root)', message: 'apiVersion and kind must be strings' }];
  }
  const name = modelName(obj.apiVersion, obj.kind);
  const Typed = typedModel(obj.apiVersion, obj.kind);
  if (!model(name) || !Typed) {
    return [
      { object, path: 'kind', message: `${obj.apiVersion} ${obj.kind} is not a kind of the Kubernetes 1.28 API` },
    ];
  }
  const problems: SchemaProblem[] = [];
  try {
    new Typed(obj as object).validate();
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] })
      .errors;
    if (!errors) throw err;
    for (const e of errors) {
      const allowed = e.params && Array.isArray(e.params.allowedValues) ? `: ${e.params.allowedValues.join(', ')}` : '';
      problems.push({
        object,
        path: jsonPointerToPath(e.instancePath) || '(root)',
        message: `${e.message ?? 'invalid'}${allowed}`,
      });
    }
  }
  const unknown: { path: string; message: string }[] = [];
  unknownFields(obj, name, '', unknown);
  for (const u of unknown) problems.push({ object, ...u });
  return problems;
}

/** Validates many objects; also rejects duplicate apiVersion/kind/namespace/name. */
export function checkObjects(objects: readonly ObjectLike[]): SchemaProblem[] {
  const seen = new Set<string>();
  const problems: SchemaProblem[] = [];
  for (const obj of objects) {
    problems.push(...checkObject(obj));
    const key = `${String(obj.apiVersion)} ${describe(obj)}`;
    if (seen.has(key)) problems.push({ object: describe(obj), path: 'metadata.name', message: 'duplicate object' });
    seen.add(key);
  }
  return problems;
}
