/**
 * `npm run docs`: regenerates the README's generated sections (topology
 * diagram, environment table) from the model. test/readme.test.ts fails when
 * they are stale.
 */
import * as fs from 'fs';
import * as path from 'path';
import { environmentNames, loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';
import { renderEnvironmentTable, renderTopology } from './topology-diagram';

export const README = path.join(__dirname, '..', '..', 'README.md');

/** The generated sections, keyed by marker name. */
export function generatedSections(): Record<string, string> {
  return {
    topology: ['```mermaid', renderTopology(synthObjects(loadEnvironment('prod'))), '```'].join('\n'),
    environments: renderEnvironmentTable(environmentNames()),
  };
}

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->` for every section (README.md, docs/*.md). */
export function fillSections(text: string, sections: Record<string, string>): string {
  let out = text;
  for (const [name, body] of Object.entries(sections)) {
    const re = new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`);
    if (!re.test(out)) throw new Error(`the document has no <!-- ${name}:start --> ... <!-- ${name}:end --> markers`);
    out = out.replace(re, (_m, start: string, end: string) => `${start}\n${body}\n${end}`);
  }
  return out;
}

export function main(): number {
  const text = fs.readFileSync(README, 'utf8');
  fs.writeFileSync(README, fillSections(text, generatedSections()));
  console.log('README.md: generated sections updated');
  return 0;
}
