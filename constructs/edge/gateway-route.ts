/**
 * The edge behind a Gateway (Gateway API, gateway.networking.k8s.io/v1): an
 * HTTPRoute that sends every path of the edge's host names to the edge Service,
 * for clusters that standardise on the Gateway API instead of a LoadBalancer
 * Service. The Gateway itself (its class, listeners and certificates) belongs to
 * the cluster; the route only names it.
 */
import type { IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { ApiObject } from 'cdk8s';
import type { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { GatewayRef } from './edge-settings';

export const HTTP_ROUTE_API_VERSION = 'gateway.networking.k8s.io/v1';

export interface HttpRouteInput {
  readonly metadata: k8s.ObjectMeta;
  readonly gateway: GatewayRef;
  /** Host names the route matches; empty = every host name of the Gateway's listener. */
  readonly hostnames: readonly string[];
  /** The edge Service and its plain-HTTP port (the Gateway terminates TLS). */
  readonly service: { readonly name: string; readonly port: number };
}

/** The HTTPRoute object (typed against the Gateway API models; validated at synth). */
export function httpRouteObject(input: HttpRouteInput): IHTTPRoute {
  const { gateway, hostnames, service } = input;
  return {
    apiVersion: HTTP_ROUTE_API_VERSION,
    kind: 'HTTPRoute',
    metadata: input.metadata as IHTTPRoute['metadata'],
    spec: {
      parentRefs: [
        {
          group: 'gateway.networking.k8s.io',
          kind: 'Gateway',
          name: gateway.name,
          ...(gateway.namespace ? { namespace: gateway.namespace } : {}),
          ...(gateway.sectionName ? { sectionName: gateway.sectionName } : {}),
        },
      ],
      ...(hostnames.length ? { hostnames: [...hostnames] } : {}),
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/' } }],
          backendRefs: [{ group: '', kind: 'Service', name: service.name, port: service.port }],
        },
      ],
    },
  };
}

/** Adds the HTTPRoute to `scope`. */
export function httpRoute(scope: Construct, id: string, input: HttpRouteInput): ApiObject {
  const { apiVersion, kind, metadata, spec } = httpRouteObject(input);
  return new ApiObject(scope, id, { apiVersion, kind, metadata: metadata as k8s.ObjectMeta, spec });
}
