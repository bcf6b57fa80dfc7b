/** The shipped Patroni and PgBouncer files of an environment, as the synthesized ConfigMaps carry them. */
import { loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';

export function dataTierObjects(env = 'dev') {
  return synthObjects(loadEnvironment(env));
}
