/**
 * Strict validation of Kubernetes objects against the 1.28 API, as
 * kubeconform -strict does, with no download:
 * - types, enums and required fields: the compiled JSON-schema validators of
 *   `kubernetes-models`;
 * - unknown fields: the field maps of `@kubernetes/client-node` 0.20.0, which
 *   is generated from the release-1.28 OpenAPI document (kubernetes-models'
 *   schemas allow extra fields).
 * Custom resources (CUSTOM_RESOURCES: the Gateway API's HTTPRoute) are checked
 * the same two ways against their models package's own schema; the prometheus-operator
 * kinds (operator mode) go through crd-check.ts the same way.
 */
import { dirname } from 'node:path';
import { crdModel, crdOpenFields, crdUnknownFields, isCustomResource } from './crd-check';

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

/** A JSON schema as the models packages ship them (the parts the unknown-field walk reads). */
interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

/**
 * Custom resources the platform emits, by `apiVersion kind`: the models package that
 * validates them and its module path. The Gateway API models (0.5.x: CommonJS) register
 * each kind's schema with their own copy of @kubernetes-models/validate on first use;
 * `registeredSchemas` keeps a copy of what they register, for the unknown-field walk.
 */
const CUSTOM_RESOURCES: Readonly<Record<string, { pkg: string; module: string }>> = {
  'gateway.networking.k8s.io/v1 HTTPRoute': {
    pkg: '@kubernetes-models/gateway-api',
    module: '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute',
  },
};

const registeredSchemas = new Map<string, JsonSchema>();
const hookedRegistries = new Set<string>();

/** Makes the validate module `pkg` uses keep a copy of every schema registered with it. */
function captureSchemas(pkg: string): void {
  if (hookedRegistries.has(pkg)) return;
  hookedRegistries.add(pkg);
  const validatePath = require.resolve('@kubernetes-models/validate', { paths: [dirname(require.resolve(pkg))] });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const registry = require(validatePath) as { register: (id: string, schema: JsonSchema) => void };
  const register = registry.register;
  registry.register = (id, schema) => {
    registeredSchemas.set(id, schema);
    register(id, schema);
  };
}

/** The model class of a custom resource, or undefined for a kind not in CUSTOM_RESOURCES. */
function customModel(apiVersion: string, kind: string): (new (data: object) => Validatable) | undefined {
  const entry = CUSTOM_RESOURCES[`${apiVersion} ${kind}`];
  if (!entry) return undefined;
  captureSchemas(entry.pkg);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(entry.module) as Record<string, new (data: object) => Validatable>)[kind];
}

/** Reports every field of `value` that `schema` does not define (metadata goes to the core API's map). */
function unknownSchemaFields(
  value: unknown,
  schema: JsonSchema,
  path: string,
  out: { path: string; message: string }[],
) {
  if (schema['x-kubernetes-preserve-unknown-fields']) return;
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((item, i) => unknownSchemaFields(item, schema.items!, `${path}[${i}]`, out));
    return;
  }
  if (!isObject(value)) return;
  const additional = schema.additionalProperties;
  if (!schema.properties) {
    if (typeof additional === 'object') {
      for (const [k, v] of Object.entries(value)) unknownSchemaFields(v, additional, `${path}.${k}`, out);
    }
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    const childPath = path ? `${path}.${key}` : key;
    const childSchema = schema.properties[key];
    if (path === '' && key === 'metadata') unknownFields(child, 'V1ObjectMeta', childPath, out);
    else if (childSchema) unknownSchemaFields(child, childSchema, childPath, out);
    else if (additional !== true) {
      out.push({
        path: childPath,
        message: `unknown field '${key}' (not in the schema; allowed: ${Object.keys(schema.properties).join(', ')})`,
      });
    }
  }
}

/** Validates one object; returns its problems (empty when valid). */
export function checkObject(obj: ObjectLike): SchemaProblem[] {
  const object = describe(obj);
  if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
    return [{ object, path: '(root)', message: 'apiVersion and kind must be strings' }];
  }
  const name = modelName(obj.apiVersion, obj.kind);
  // prometheus-operator kinds (crd-check.ts), other custom resources (CUSTOM_RESOURCES), core kinds.
  const crd = isCustomResource(obj.apiVersion);
  const Custom = crd ? undefined : customModel(obj.apiVersion, obj.kind);
  const Typed = crd ? crdModel(obj.apiVersion, obj.kind) : (Custom ?? typedModel(obj.apiVersion, obj.kind));
  if (crd && !Typed) {
    return [
      { object, path: 'kind', message: `${obj.apiVersion} ${obj.kind} is not a kind of the prometheus-operator CRDs` },
    ];
  }
  if (!Typed || (!crd && !Custom && !model(name))) {
    return [
      { object, path: 'kind', message: `${obj.apiVersion} ${obj.kind} is not a kind of the Kubernetes 1.28 API` },
    ];
  }
  const problems: SchemaProblem[] = [];
  const validate = (target: object, rebase: (path: string) => string) => {
    try {
      new Typed(target).validate();
    } catch (err) {
      const errors = (
        err as { errors?: { instancePath: string; message?: string; params?: Record<string, unknown> }[] }
      ).errors;
      if (!errors) throw err;
      for (const e of errors) {
        const allowed =
          e.params && Array.isArray(e.params.allowedValues) ? `: ${e.params.allowedValues.join(', ')}` : '';
        problems.push({
          object,
          path: rebase(jsonPointerToPath(e.instancePath)) || '(root)',
          message: `${e.message ?? 'invalid'}${allowed}`,
        });
      }
    }
  };
  validate(obj as object, (p) => p);
  const unknown: { path: string; message: string }[] = [];
  if (crd) {
    // Fields a CRD leaves open (an AlertmanagerConfig's child routes) are validated as the type they hold.
    for (const open of crdOpenFields(obj)) validate(open.asObject, open.rebase);
    unknown.push(
      ...crdUnknownFields(obj as { apiVersion: string; kind: string }, (meta, path, out) =>
        unknownFields(meta, 'V1ObjectMeta', path, out),
      ),
    );
  } else if (Custom) {
    // Registered by the validate() above: the schema id is `<group>.<version>.<kind>`.
    const schema = registeredSchemas.get(`${obj.apiVersion.replace('/', '.')}.${obj.kind}`);
    if (!schema) throw new Error(`no schema was registered for ${obj.apiVersion} ${obj.kind}`);
    unknownSchemaFields(obj, schema, '', unknown);
  } else {
    unknownFields(obj, name, '', unknown);
  }
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
