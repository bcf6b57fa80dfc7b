/**
 * Strict validation of the prometheus-operator custom resources (operator mode) against the
 * CRD schemas of `@kubernetes-models/prometheus-operator` (4.4.4: prometheus-operator
 * v0.65.1's CRDs; newer operators only add fields, so what passes here is accepted there):
 * - types, enums, patterns and required fields: the package's compiled validators;
 * - unknown fields, which those validators let through: the field tree of the package's type
 *   declarations (generated from the same CRD schemas), read with the TypeScript parser.
 * Where the CRD leaves a field open (`x-kubernetes-preserve-unknown-fields`, typed `any`),
 * e.g. an AlertmanagerConfig's nested `routes`, it is checked as the type the operator
 * parses it as (a route), so a typo there is caught too.
 */
import { readFileSync } from 'fs';
import * as ts from 'typescript';

const PACKAGE = '@kubernetes-models/prometheus-operator';
/** API groups whose kinds this module validates. */
export const CRD_GROUPS: ReadonlySet<string> = new Set(['monitoring.coreos.com']);

/** A field's shape as far as unknown fields go. */
type Shape =
  | { readonly kind: 'object'; readonly fields: ReadonlyMap<string, Shape>; readonly index?: Shape }
  | { readonly kind: 'array'; readonly item: Shape }
  | { readonly kind: 'meta' }
  | { readonly kind: 'any'; readonly path: string }
  | { readonly kind: 'scalar' };

type Validatable = { validate(): void };
type ModelClass = new (data: object) => Validatable;

export function isCustomResource(apiVersion: string): boolean {
  return CRD_GROUPS.has(apiVersion.split('/')[0]);
}

/** The package's model class for apiVersion + kind, or undefined. */
export function crdModel(apiVersion: string, kind: string): ModelClass | undefined {
  if (!isCustomResource(apiVersion) || !/^[a-z0-9.]+\/[a-z0-9]+$/.test(apiVersion) || !/^[A-Za-z]+$/.test(kind)) {
    return undefined;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(`${PACKAGE}/${apiVersion}/${kind}`) as Record<string, ModelClass>;
    return mod[kind];
  } catch {
    return undefined;
  }
}

const shapes = new Map<string, Shape>();

/** The field tree of `I<Kind>` in the package's declaration file for apiVersion + kind. */
function shapeOf(apiVersion: string, kind: string): Shape {
  const key = `${apiVersion}/${kind}`;
  const known = shapes.get(key);
  if (known) return known;
  const file = require.resolve(`${PACKAGE}/${apiVersion}/${kind}`).replace(/\.js$/, '.d.ts');
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const decl = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === `I${kind}`,
  );
  if (!decl) throw new Error(`crd-check: no interface I${kind} in ${file}`);
  const shape = membersShape(decl.members, kind);
  shapes.set(key, shape);
  return shape;
}

function propertyName(name: ts.PropertyName): string {
  if (ts.isStringLiteral(name) || ts.isIdentifier(name)) return name.text;
  throw new Error(`crd-check: unexpected property name ${ts.SyntaxKind[name.kind]}`);
}

function membersShape(members: ts.NodeArray<ts.TypeElement>, path: string): Shape {
  const fields = new Map<string, Shape>();
  let index: Shape | undefined;
  for (const m of members) {
    if (ts.isPropertySignature(m) && m.type) {
      const name = propertyName(m.name);
      fields.set(name, typeShape(m.type, `${path}.${name}`));
    } else if (ts.isIndexSignatureDeclaration(m)) {
      index = typeShape(m.type, `${path}[*]`);
    }
  }
  return { kind: 'object', fields, index };
}

function typeShape(node: ts.TypeNode, path: string): Shape {
  if (ts.isTypeLiteralNode(node)) return membersShape(node.members, path);
  if (ts.isArrayTypeNode(node)) return { kind: 'array', item: typeShape(node.elementType, `${path}[]`) };
  if (ts.isTypeReferenceNode(node)) {
    const text = ts.isIdentifier(node.typeName) ? node.typeName.text : node.typeName.right.text;
    if (text === 'Array' && node.typeArguments?.length === 1) {
      return { kind: 'array', item: typeShape(node.typeArguments[0], `${path}[]`) };
    }
    if (text === 'IObjectMeta') return { kind: 'meta' };
    throw new Error(`crd-check: unexpected type reference ${text} at ${path}`);
  }
  if (ts.isUnionTypeNode(node)) {
    const objects = node.types.filter((t) => ts.isTypeLiteralNode(t) || ts.isTypeReferenceNode(t));
    if (objects.length === 0) return { kind: 'scalar' };
    if (objects.length === 1) return typeShape(objects[0], path);
    throw new Error(`crd-check: a union of object types at ${path}`);
  }
  if (node.kind === ts.SyntaxKind.AnyKeyword || node.kind === ts.SyntaxKind.UnknownKeyword)
    return { kind: 'any', path };
  return { kind: 'scalar' };
}

/**
 * Fields the CRD leaves open (preserve-unknown-fields), checked as this shape instead:
 * an AlertmanagerConfig route's `routes` are routes (the operator unmarshals them as such).
 */
function openFieldShape(root: Shape, open: Shape & { kind: 'any' }): Shape | undefined {
  if (/\.spec\.route(\.routes\[\])*\.routes\[\]$/.test(open.path) && root.kind === 'object') {
    const spec = root.fields.get('spec');
    const route = spec?.kind === 'object' ? spec.fields.get('route') : undefined;
    return route;
  }
  return undefined;
}

/** Every field of `value` the CRD does not define (ObjectMeta through `metaUnknown`). */
function unknownFields(
  value: unknown,
  shape: Shape,
  root: Shape,
  path: string,
  out: { path: string; message: string }[],
  metaUnknown: (value: unknown, path: string, out: { path: string; message: string }[]) => void,
): void {
  if (value === null || value === undefined) return;
  switch (shape.kind) {
    case 'scalar':
      return;
    case 'meta':
      metaUnknown(value, path, out);
      return;
    case 'any': {
      const instead = openFieldShape(root, shape);
      if (instead) unknownFields(value, instead, root, path, out, metaUnknown);
      return;
    }
    case 'array':
      if (Array.isArray(value))
        value.forEach((v, i) => unknownFields(v, shape.item, root, `${path}[${i}]`, out, metaUnknown));
      return;
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return;
      for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
        const childPath = path ? `${path}.${key}` : key;
        const field = shape.fields.get(key) ?? shape.index;
        if (!field) {
          out.push({
            path: childPath,
            message: `unknown field '${key}' (not in the CRD schema; allowed: ${[...shape.fields.keys()].join(', ')})`,
          });
        } else {
          unknownFields(child, field, root, childPath, out, metaUnknown);
        }
      }
    }
  }
}

/** Unknown fields of a custom resource of a CRD_GROUPS kind. */
export function crdUnknownFields(
  obj: { apiVersion: string; kind: string },
  metaUnknown: (value: unknown, path: string, out: { path: string; message: string }[]) => void,
): { path: string; message: string }[] {
  const root = shapeOf(obj.apiVersion, obj.kind);
  const out: { path: string; message: string }[] = [];
  unknownFields(obj, root, root, '', out, metaUnknown);
  return out;
}

/**
 * The values of fields the CRD leaves open but the operator parses as a known type, each
 * wrapped as a whole object of the same kind so its validator checks them: an
 * AlertmanagerConfig's child routes (at any depth) as its `spec.route`. `rebase` maps a path
 * in the wrapper back to the object.
 */
export function crdOpenFields(obj: ObjectWithKind): { asObject: object; rebase: (path: string) => string }[] {
  if (obj.kind !== 'AlertmanagerConfig') return [];
  const out: { asObject: object; rebase: (path: string) => string }[] = [];
  const walk = (route: unknown, at: string) => {
    const children = (route as { routes?: unknown[] } | undefined)?.routes;
    if (!Array.isArray(children)) return;
    children.forEach((child, i) => {
      const path = `${at}.routes[${i}]`;
      out.push({
        asObject: { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name: 'route' }, spec: { route: child } },
        rebase: (p) => (p.startsWith('spec.route') ? `${path}${p.slice('spec.route'.length)}` : p),
      });
      walk(child, path);
    });
  };
  walk((obj.spec as { route?: unknown } | undefined)?.route, 'spec.route');
  return out;
}

type ObjectWithKind = { apiVersion?: unknown; kind?: unknown; spec?: unknown };
