/**
 * Writing and reading `dist/<env>/`: one YAML file per object, named so that
 * `kubectl apply -f dist/<env>` applies them in order (Namespace first).
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseAllDocuments, stringify } from 'yaml';
import type { KubeObject } from './synth';

/** File name of the i-th object: `NNN-kind-name.yaml`. */
export function manifestFileName(index: number, obj: KubeObject): string {
  return `${String(index).padStart(3, '0')}-${obj.kind.toLowerCase()}-${obj.metadata.name}.yaml`;
}

/** Deterministic YAML of one object (no line folding, stable key order from the model). */
export function toYaml(obj: KubeObject): string {
  return stringify(obj, { lineWidth: 0, minContentWidth: 0 });
}

/**
 * Writes every environment's objects under `outDir/<env>/`, all or nothing:
 * everything is written to a temporary folder first, then each environment's
 * folder is swapped in. A failure before the swap leaves `outDir` untouched.
 */
export function writeEnvironments(outDir: string, environments: ReadonlyMap<string, KubeObject[]>): void {
  fs.mkdirSync(outDir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(outDir, '.synth-'));
  try {
    for (const [env, objects] of environments) {
      const dir = path.join(staging, env);
      fs.mkdirSync(dir);
      objects.forEach((obj, i) => fs.writeFileSync(path.join(dir, manifestFileName(i, obj)), toYaml(obj)));
    }
    for (const env of environments.keys()) {
      const target = path.join(outDir, env);
      const old = path.join(staging, `${env}.old`);
      if (fs.existsSync(target)) fs.renameSync(target, old);
      fs.renameSync(path.join(staging, env), target);
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** Reads every object from the YAML files of a directory (sorted by file name). */
export function readManifestDir(dir: string): KubeObject[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) =>
      parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8'))
        .map((d) => d.toJS() as KubeObject | null)
        .filter((o): o is KubeObject => o !== null),
    );
}
