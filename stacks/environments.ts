/**
 * The registry of environments. To add one: copy `staging.ts` to `<name>.ts`,
 * change its overrides, and add one line below.
 */
import { type EnvironmentConfig, type EnvironmentOverrides, deepMerge, resolveEnvironment } from './config';
import { dev } from './dev';
import { prod } from './prod';
import { staging } from './staging';

export const ENVIRONMENTS: Readonly<Record<string, EnvironmentOverrides>> = {
  dev,
  staging,
  prod,
};

/** Names of the registered environments, in registry order. */
export const environmentNames = (): string[] => Object.keys(ENVIRONMENTS);

/** Resolves one registered environment (throws ConfigError on bad config, Error on an unknown name). */
export function loadEnvironment(
  name: string,
  extra: object = {},
  registry: Readonly<Record<string, EnvironmentOverrides>> = ENVIRONMENTS,
): EnvironmentConfig {
  const overrides = registry[name];
  if (!overrides) {
    throw new Error(
      `Unknown environment '${name}'; registered: ${Object.keys(registry).join(', ')} (add it in stacks/environments.ts)`,
    );
  }
  if (overrides.name !== name) {
    throw new Error(`Environment registered as '${name}' declares name '${overrides.name}'; make them equal`);
  }
  return resolveEnvironment(deepMerge(overrides, extra));
}
