/**
 * Pulumi entry point (`main` in Pulumi.yaml): the stack selects the
 * environment, stack config may override a documented subset and supply
 * secrets, and `fastnext:platform:Stack` registers the same objects
 * `npm run synth` writes. See docs/pulumi.md.
 */
import { PlatformStack } from './pulumi-stack';
import { readPulumiSettings, resolveStackEnvironment } from './pulumi-config';

const settings = readPulumiSettings();
const config = resolveStackEnvironment(settings);

const stack = new PlatformStack(`fastnext-${config.name}`, {
  config,
  kubeconfig: settings.kubeconfig,
  kubeContext: settings.kubeContext,
  statefulProtection: settings.statefulProtection,
  secrets: settings.secrets,
  postgresActiveLogin: settings.postgresActiveLogin,
});

export const namespace = stack.namespace;
export const edgeAddress = stack.edgeAddress;
export const grafanaUrl = stack.grafanaUrl;
export const prometheusUrl = stack.prometheusUrl;
export const postgresPrimaryHost = stack.postgresPrimaryHost;
export const postgresReadOnlyHost = stack.postgresReadOnlyHost;
export const redisSeedHosts = stack.redisSeedHosts;
