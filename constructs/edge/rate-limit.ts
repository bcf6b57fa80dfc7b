import * as core from '../core';
import { indent } from './edge-errors';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** A limit of its own for some requests (by path prefix and method). */
export interface RateLimitRoute {
  /**
   * Path prefix the limit applies to, as an nginx prefix location: `/api/v1/users`
   * also matches `/api/v1/users/1` and `/api/v1/users-old`. The longest matching
   * prefix wins.
   */
  readonly pathPrefix: string;
  /** Methods it applies to; the others on that path keep the default limit. @default - every method */
  readonly methods?: readonly HttpMethod[];
  /** Requests per second per client IP. */
  readonly requestsPerSecond: number;
  /** Requests queued above the rate before nginx answers 429. */
  readonly burst: number;
}

export interface RateLimit {
  /** Requests per second per client IP. */
  readonly requestsPerSecond: number;
  /** Requests queued above the rate before nginx answers 429. */
  readonly burst: number;
  /** Client CIDRs no limit applies to (the load balancer's health checks, internal callers). @default [] */
  readonly allowlist?: readonly string[];
  /** Limits that replace the default for the requests they match. @default [] */
  readonly routes?: readonly RateLimitRoute[];
}

/** A path nginx takes as a bare location prefix: no spaces, quotes, braces, `;` or `$`. */
export const PATH_PREFIX = /^\/[A-Za-z0-9._~!*'()+,=:@%/-]*$/;

/** The error of a route without a path. */
export const ROUTE_PATH_REQUIRED =
  "is required: the path the limit applies to, e.g. '/api/v1/users' ('/' for every path)";

/** What a CIDR must look like (the tail of every error about one). */
export const CIDR_FORMAT = 'must be a CIDR such as "10.0.0.0/8" or "2001:db8::/32" (one address: "10.1.2.3/32")';

/** One problem: the path below the setting (`routes[0].pathPrefix`), the value and what is wrong. */
export interface SettingProblem {
  readonly path: string;
  readonly value: unknown;
  readonly message: string;
}

/** Problems of the allowlist and the routes (the numbers are checked by their own fields). */
export function rateLimitProblems(r: RateLimit): SettingProblem[] {
  const problems: SettingProblem[] = [];
  (r.allowlist ?? []).forEach((c, i) => {
    if (!core.isCidr(c)) problems.push({ path: `allowlist[${i}]`, value: c, message: CIDR_FORMAT });
  });
  const claimed = new Map<string, number>();
  (r.routes ?? []).forEach((route, i) => {
    const at = `routes[${i}]`;
    if (route.pathPrefix === undefined || route.pathPrefix === '') {
      problems.push({
        path: `${at}.pathPrefix`,
        value: route.pathPrefix ?? '',
        message: ROUTE_PATH_REQUIRED,
      });
      return;
    }
    if (!PATH_PREFIX.test(route.pathPrefix)) {
      problems.push({
        path: `${at}.pathPrefix`,
        value: route.pathPrefix,
        message: "must start with '/' and hold URL path characters only (no spaces, quotes, braces, ';' or '$')",
      });
    }
    if (!Number.isInteger(route.requestsPerSecond) || route.requestsPerSecond < 1) {
      problems.push({
        path: `${at}.requestsPerSecond`,
        value: route.requestsPerSecond,
        message: 'must be an integer >= 1 (requests per second per client IP)',
      });
    }
    if (!Number.isInteger(route.burst) || route.burst < 0) {
      problems.push({
        path: `${at}.burst`,
        value: route.burst,
        message: 'must be an integer >= 0 (requests above the rate before 429)',
      });
    }
    if (route.methods?.length === 0) {
      problems.push({
        path: `${at}.methods`,
        value: route.methods,
        message: 'is empty: list the methods the limit applies to, or leave it out for every method',
      });
    }
    for (const m of route.methods ?? HTTP_METHODS) {
      const key = `${route.pathPrefix} ${m}`;
      const other = claimed.get(key);
      if (other !== undefined) {
        problems.push({
          path: `${at}.methods`,
          value: route.methods ?? 'every method',
          message: `overlaps routes[${other}] (${m} ${route.pathPrefix}): one route per path prefix and method`,
        });
        break;
      }
      claimed.set(key, i);
    }
  });
  return problems;
}

/** A location of the public server and the routes whose limits it applies. */
interface LocationLimits {
  readonly prefix: string;
  readonly routes: { readonly index: number; readonly route: RateLimitRoute }[];
  /** Whether the default limit still applies to some methods here. */
  readonly usesDefault: boolean;
}

/** What the public server's locations and the http block need for the limits. */
export interface RenderedLimits {
  /** http-level lines: zones and the maps that build their keys. */
  readonly http: string[];
  /** One entry per location of the public server ('/' first): its prefix and its limit lines. */
  readonly locations: { readonly prefix: string; readonly lines: string[] }[];
}

const ZONE_DEFAULT = 'per_client';
const routeZone = (i: number) => `route_${i}`;
const methodsOf = (r: RateLimitRoute) => (r.methods ? r.methods.join(', ') : 'every method');
/** `limit_req` of a zone (nginx refuses `burst=0`: no burst is the default). */
const limitReq = (zone: string, burst: number) =>
  `limit_req zone=${zone}${burst > 0 ? ` burst=${burst}` : ''} nodelay;`;

/** Renders the zones, maps and per-location `limit_req` lines of `r`. */
export function renderRateLimits(r: RateLimit): RenderedLimits {
  const allowlist = r.allowlist ?? [];
  const routes = r.routes ?? [];
  const http: string[] = [];
  // The client's key: empty for an allowlisted client.
  const client = allowlist.length ? '$limit_client' : '$binary_remote_addr';

  const byPrefix = new Map<string, LocationLimits['routes']>([['/', []]]);
  routes.forEach((route, index) =>
    byPrefix.set(route.pathPrefix, [...(byPrefix.get(route.pathPrefix) ?? []), { index, route }]),
  );
  const locations: LocationLimits[] = [...byPrefix].map(([prefix, rs]) => ({
    prefix,
    routes: rs,
    usesDefault: !rs.some((x) => x.route.methods === undefined),
  }));
  // Where a route covers some methods only, the default must not count what the route limits.
  const partial = locations.filter((l) => l.usesDefault && l.routes.length > 0);
  const defaultKey = partial.length ? '$limit_default' : client;

  http.push(
    `# ${r.requestsPerSecond} requests/s per client IP, ${r.burst} more in a burst, then 429 (with Retry-After).`,
  );
  if (allowlist.length) {
    http.push(
      '# Clients no limit applies to (edge.rateLimit.allowlist): their key is empty, which limit_req does not count.',
      'geo $limit_exempt {',
      '    default 0;',
      ...allowlist.map((c) => `    ${c} 1;`),
      '}',
      'map $limit_exempt $limit_client {',
      '    1 "";',
      '    default $binary_remote_addr;',
      '}',
    );
  }
  if (partial.length) {
    http.push(
      '# A request a route limits is not counted again by the default limit.',
      'map "$limit_location:$request_method" $limit_default {',
      ...partial.flatMap((l) =>
        l.routes.flatMap((x) => x.route.methods!.map((m) => `    "${locations.indexOf(l)}:${m}" "";`)),
      ),
      `    default ${client};`,
      '}',
    );
  }
  http.push(`limit_req_zone ${defaultKey} zone=${ZONE_DEFAULT}:10m rate=${r.requestsPerSecond}r/s;`);
  routes.forEach((route, i) => {
    http.push(
      `# ${route.pathPrefix} (${methodsOf(route)}): ${route.requestsPerSecond} requests/s per client IP, ${route.burst} more in a burst.`,
    );
    let key = client;
    if (route.methods) {
      key = `$limit_route_${i}`;
      http.push(
        `map $request_method ${key} {`,
        ...route.methods.map((m) => `    ${m} ${client};`),
        '    default "";',
        '}',
      );
    }
    http.push(`limit_req_zone ${key} zone=${routeZone(i)}:5m rate=${route.requestsPerSecond}r/s;`);
  });
  http.push('limit_req_status 429;', 'limit_req_log_level warn;');

  return {
    http,
    locations: locations.map((l, k) => ({
      prefix: l.prefix,
      lines: [
        // Every location that counts the default limit names itself to the map above.
        ...(partial.length && l.usesDefault ? [`set $limit_location ${k};`] : []),
        ...l.routes.map((x) => limitReq(routeZone(x.index), x.route.burst)),
        ...(l.usesDefault ? [limitReq(ZONE_DEFAULT, r.burst)] : []),
      ],
    })),
  };
}

/** `location <prefix> { <limit lines> <body> }` for each location of `limits`. */
export function renderLocations(limits: RenderedLimits, body: readonly string[]): string[] {
  return limits.locations.flatMap((l) => [`location ${l.prefix} {`, ...indent([...l.lines, ...body]), '}']);
}
