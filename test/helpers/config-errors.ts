import { ConfigError } from '../../stacks/config';
import { loadEnvironment } from '../../stacks/environments';

/** Resolves `prod` with extra overrides and returns the ConfigError's message (or fails the test). */
export function errorFor(extra: object): string {
  try {
    loadEnvironment('prod', extra);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}
