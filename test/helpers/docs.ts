import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * GitHub's anchors of a document's headings (`docs/<file>`): lowercased, punctuation dropped,
 * spaces as '-'. `level` limits them to one heading level (2 = `## `). Alert rules link these.
 */
export function docAnchors(file: string, level?: number): Set<string> {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', file), 'utf8');
  const heading = level === undefined ? /^#+ (.+)$/gm : new RegExp(`^${'#'.repeat(level)} (.+)$`, 'gm');
  return new Set(
    [...doc.matchAll(heading)].map((m) =>
      m[1]
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    ),
  );
}
