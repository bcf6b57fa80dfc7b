/**
 * Where the launcher takes the shipped files from: the synthesized objects of an
 * environment (the ConfigMaps, byte for byte) or a plain `{ fileName: text }` map.
 */
import type { KubeObject } from '../../k8s/objects';

/** Synthesized objects of an environment, or the files themselves keyed by name. */
export type FileSource = readonly KubeObject[] | Readonly<Record<string, string>>;

/** The `data` of ConfigMap `name`, or the map itself. Throws naming the missing files. */
export function filesFrom(source: FileSource, configMap: string, required: readonly string[]): Record<string, string> {
  let files: Record<string, string>;
  if (Array.isArray(source)) {
    const cm = (source as readonly KubeObject[]).find((o) => o.kind === 'ConfigMap' && o.metadata?.name === configMap);
    if (!cm?.data) throw new Error(`no ConfigMap '${configMap}' with data among the ${source.length} objects given`);
    files = { ...(cm.data as Record<string, string>) };
  } else {
    files = { ...(source as Record<string, string>) };
  }
  const missing = required.filter((f) => typeof files[f] !== 'string');
  if (missing.length) throw new Error(`ConfigMap '${configMap}' lacks ${missing.join(', ')}`);
  return files;
}

/** Value of env var `name` on any container of workload `workload` (objects only). */
export function envOf(source: FileSource, workload: string, name: string): string | undefined {
  if (!Array.isArray(source)) return undefined;
  for (const o of source as readonly KubeObject[]) {
    if (o.metadata?.name !== workload) continue;
    const spec = o.spec as { template?: { spec?: { containers?: { env?: { name: string; value?: string }[] }[] } } };
    for (const c of spec?.template?.spec?.containers ?? []) {
      const e = c.env?.find((v) => v.name === name && typeof v.value === 'string');
      if (e) return e.value;
    }
  }
  return undefined;
}
