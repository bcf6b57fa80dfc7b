/**
 * One snapshot per object (`<env> Kind/name`), for review of every change: a
 * one-label change is a small diff of one entry. A complement to the
 * fine-grained invariants in platform.test.ts, not a substitute. A Job's name
 * ends in a hash of its spec; its entry is keyed without it, so a changed Job
 * shows as a changed entry rather than one removed and one added.
 */
import { ENVS, objectsOf } from './helpers/objects';

const entryName = (o: { kind: string; metadata: { name: string } }) =>
  `${o.kind}/${o.kind === 'Job' ? o.metadata.name.replace(/-[0-9a-f]{8}$/, '-<hash>') : o.metadata.name}`;

describe.each(ENVS)('%s', (env) => {
  const objects = objectsOf(env);

  test('each object has one entry', () => {
    const names = objects.map(entryName);
    expect(new Set(names).size).toBe(names.length);
  });

  test.each(objects.map((o) => [entryName(o), o] as const))('%s matches the reviewed snapshot', (_name, object) => {
    expect(object).toMatchSnapshot();
  });
});
