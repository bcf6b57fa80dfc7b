/**
 * One snapshot per environment, for review of every change. A complement to
 * the fine-grained invariants in platform.test.ts, not a substitute.
 */
import { ENVS, objectsOf } from './helpers/objects';

describe.each(ENVS)('%s', (env) => {
  test('synthesized objects match the reviewed snapshot', () => {
    expect(objectsOf(env)).toMatchSnapshot();
  });
});
