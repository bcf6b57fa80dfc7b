/**
 * The edge's production settings without servers: what each renders into the
 * shipped nginx.conf and the edge objects, and the refusals of bad input at synth
 * (field, value and fix). tests that run the confs on real nginx:
 * test/edge-nginx.test.ts and test/edge-cert-reload.test.ts.
 */
import { Testing } from 'cdk8s';
import {
  CERT_RELOAD_HEARTBEAT,
  CERT_RELOAD_KEY,
  CERT_RELOAD_PATH,
  certReloadProbes,
} from '../constructs/edge/cert-reload';
import { EdgeProxy } from '../constructs/edge/edge-proxy';
import { EDGE_PORTS } from '../constructs/edge/nginx-conf';
import { renderRateLimits } from '../constructs/edge/rate-limit';
import { ConfigError, resolveEnvironment } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { runPolicy } from '../tools/manifests/policy/engine';
import { checkObjects } from '../tools/manifests/schema-check';
import { forNginx } from '../tools/runtime/nginx-dialect';
import { find, type Obj, objectsOf } from './helpers/objects';

const objectsWith = (env: string, edge: object) => synthObjects(loadEnvironment(env, { edge })) as Obj[];
const confOf = (objects: Obj[]) => find(objects, 'ConfigMap', 'edge-nginx-conf').data['nginx.conf'] as string;
const lines = (conf: string) => conf.split('\n').map((l) => l.trim());

/** A new production environment 'qa' (generic cluster, no TLS); it decides on backups, as every production one must. */
const qa = (edge: object) => ({ name: 'qa', edge, postgres: { backup: { enabled: false } } });

/** The ConfigError message of a new environment 'qa' with `edge` (or fails the test). */
function errorFor(edge: object): string {
  try {
    resolveEnvironment(qa(edge));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults: what an environment gets without saying anything', () => {
  const prod = lines(confOf(objectsOf('prod')));
  const dev = lines(confOf(objectsOf('dev')));

  test('HTTP/2 on the TLS listener only (the plain-HTTP port redirects)', () => {
    const tlsListen = prod.indexOf(`listen ${EDGE_PORTS.https} ssl default_server;`);
    expect(prod[tlsListen + 1]).toBe('http2 on;');
    expect(prod.filter((l) => l === 'http2 on;')).toHaveLength(1);
    expect(dev).not.toContain('http2 on;');
  });

  test('gzip for JSON of 1 KB or more at level 1, behind proxies too, with Vary', () => {
    for (const conf of [prod, dev]) {
      expect(conf).toEqual(
        expect.arrayContaining([
          'gzip on;',
          'gzip_types application/json application/problem+json;',
          'gzip_min_length 1024;',
          'gzip_comp_level 1;',
          'gzip_proxied any;',
          'gzip_vary on;',
        ]),
      );
    }
  });

  test('no realip and no allowlist: the peer address is the key, as before (nothing added per request)', () => {
    expect(prod.join('\n')).not.toMatch(/real_ip|set_real_ip_from|geo |map |\$realip_remote_addr/);
    expect(prod).toContain('limit_req_zone $binary_remote_addr zone=per_client:10m rate=100r/s;');
    expect(prod).toContain('limit_req zone=per_client burst=50 nodelay;');
  });

  test('with TLS, the cert-reload sidecar runs the nginx image, as nginx user, in one process namespace', () => {
    const objects = objectsOf('prod');
    const pod = find(objects, 'Deployment', 'edge').spec.template.spec;
    const [nginx, , reload] = pod.containers;
    expect(pod.containers.map((c: Obj) => c.name)).toEqual(['nginx', 'exporter', 'cert-reload']);
    expect(pod.shareProcessNamespace).toBe(true);
    expect(reload.image).toBe(nginx.image);
    expect(reload.command).toEqual(['sh', CERT_RELOAD_PATH]);
    expect(reload.securityContext).toEqual(nginx.securityContext);
    expect(reload.securityContext.capabilities.drop).toEqual(['ALL']);
    expect(pod.securityContext.runAsUser).toBe(101);
    // It reads the Secret and nginx's pid file where nginx has them.
    const mount = (c: Obj, volume: string) => c.volumeMounts.find((m: Obj) => m.name === volume)?.mountPath;
    expect(mount(reload, 'tls')).toBe(mount(nginx, 'tls'));
    expect(mount(reload, 'scratch')).toBe(mount(nginx, 'scratch'));
    expect(reload.volumeMounts.find((m: Obj) => m.name === 'tls').readOnly).toBe(true);
    // The Secret is mounted as a directory: subPath mounts never see a Secret update.
    expect(nginx.volumeMounts.find((m: Obj) => m.name === 'tls').subPath).toBeUndefined();
    const probes = certReloadProbes({ checkSeconds: 2 });
    expect([reload.readinessProbe.exec.command, reload.livenessProbe.exec.command]).toEqual([
      probes.readiness,
      probes.liveness,
    ]);
    expect(probes.liveness.join(' ')).toContain(`date -r ${CERT_RELOAD_HEARTBEAT}`);
    expect(Object.keys(find(objects, 'ConfigMap', 'edge-nginx-conf').data).sort()).toEqual(
      [CERT_RELOAD_KEY, 'nginx.conf'].sort(),
    );
  });

  test('without TLS there is no sidecar and the pod keeps its own process namespace', () => {
    const pod = find(objectsOf('dev'), 'Deployment', 'edge').spec.template.spec;
    expect(pod.containers.map((c: Obj) => c.name)).toEqual(['nginx', 'exporter']);
    expect(pod.shareProcessNamespace).toBeUndefined();
    expect(Object.keys(find(objectsOf('dev'), 'ConfigMap', 'edge-nginx-conf').data)).toEqual(['nginx.conf']);
  });

  test('a changed script rolls the pods like a changed nginx.conf', () => {
    const hash = (o: Obj[]) =>
      find(o, 'Deployment', 'edge').spec.template.metadata.annotations['fastnext.io/nginx-conf-sha256'];
    const slower = objectsWith('prod', { tls: { secretName: 'edge-tls', reloadCheckSeconds: 5 } });
    expect(find(slower, 'ConfigMap', 'edge-nginx-conf').data[CERT_RELOAD_KEY]).toContain('CHECK_SECONDS=5\n');
    expect(confOf(slower)).toBe(confOf(objectsOf('prod')));
    expect(hash(slower)).not.toBe(hash(objectsOf('prod')));
  });
});

describe('settings, as an environment writes them', () => {
  test('realIp X-Forwarded-For: the trusted proxies, the header, the recursive rule; the log also names the proxy', () => {
    const conf = lines(
      confOf(
        objectsWith('prod', {
          realIp: { trustedProxies: ['10.0.0.0/8', '130.211.0.0/22'], header: 'X-Forwarded-For' },
        }),
      ),
    );
    expect(conf).toEqual(
      expect.arrayContaining([
        'set_real_ip_from 10.0.0.0/8;',
        'set_real_ip_from 130.211.0.0/22;',
        'real_ip_header X-Forwarded-For;',
        'real_ip_recursive on;',
      ]),
    );
    expect(conf.join('\n')).toContain('"peer_addr":"$realip_remote_addr"');
  });

  test('realIp proxy_protocol: both public listeners take the PROXY header, the status port does not', () => {
    const conf = lines(
      confOf(objectsWith('prod', { realIp: { trustedProxies: ['10.0.0.0/8'], header: 'proxy_protocol' } })),
    );
    expect(conf).toEqual(
      expect.arrayContaining([
        `listen ${EDGE_PORTS.http} proxy_protocol default_server;`,
        `listen ${EDGE_PORTS.https} ssl proxy_protocol default_server;`,
        `listen ${EDGE_PORTS.status};`,
        'real_ip_header proxy_protocol;',
      ]),
    );
    expect(conf).not.toContain('real_ip_recursive on;');
  });

  test('http2 and gzip can be turned off', () => {
    const conf = lines(confOf(objectsWith('prod', { http2: false, gzip: { enabled: false } })));
    expect(conf).not.toContain('http2 on;');
    expect(conf.join('\n')).not.toMatch(/^gzip/m);
  });

  test('routes: one location per path prefix; the default limit skips what a route covers; burst 0 is no burst', () => {
    const r = renderRateLimits({
      requestsPerSecond: 100,
      burst: 50,
      routes: [
        { pathPrefix: '/api/v1/users', methods: ['POST'], requestsPerSecond: 20, burst: 0 },
        { pathPrefix: '/api/v1/users', methods: ['DELETE'], requestsPerSecond: 5, burst: 5 },
        { pathPrefix: '/', methods: ['PUT'], requestsPerSecond: 10, burst: 10 },
        { pathPrefix: '/api/v1/products', requestsPerSecond: 500, burst: 100 },
      ],
    });
    expect(r.locations).toEqual([
      {
        prefix: '/',
        lines: [
          'set $limit_location 0;',
          'limit_req zone=route_2 burst=10 nodelay;',
          'limit_req zone=per_client burst=50 nodelay;',
        ],
      },
      {
        prefix: '/api/v1/users',
        lines: [
          'set $limit_location 1;',
          'limit_req zone=route_0 nodelay;',
          'limit_req zone=route_1 burst=5 nodelay;',
          'limit_req zone=per_client burst=50 nodelay;',
        ],
      },
      // Every method has its route here: the default does not apply, no location key needed.
      { prefix: '/api/v1/products', lines: ['limit_req zone=route_3 burst=100 nodelay;'] },
    ]);
    expect(r.http).toEqual(
      expect.arrayContaining([
        'map "$limit_location:$request_method" $limit_default {',
        '    "0:PUT" "";',
        '    "1:POST" "";',
        '    "1:DELETE" "";',
        '    default $binary_remote_addr;',
        'limit_req_zone $limit_default zone=per_client:10m rate=100r/s;',
        'limit_req_zone $binary_remote_addr zone=route_3:5m rate=500r/s;',
      ]),
    );
  });

  test('expose gateway: an HTTPRoute to the edge Service that passes strict validation and the policy checks', () => {
    // dev: kind's ClusterIP Service and no TLS of its own (the Gateway terminates it).
    const objects = objectsWith('dev', {
      expose: 'gateway',
      gateway: { name: 'shared-gateway', namespace: 'infra', sectionName: 'https' },
      hostnames: ['fastnext.example.com', 'api.fastnext.example.com'],
    });
    const route = find(objects, 'HTTPRoute', 'edge');
    expect(route.apiVersion).toBe('gateway.networking.k8s.io/v1');
    expect(route.metadata.namespace).toBe('fastnext-dev');
    expect(route.spec).toEqual({
      parentRefs: [
        {
          group: 'gateway.networking.k8s.io',
          kind: 'Gateway',
          name: 'shared-gateway',
          namespace: 'infra',
          sectionName: 'https',
        },
      ],
      hostnames: ['fastnext.example.com', 'api.fastnext.example.com'],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/' } }],
          backendRefs: [{ group: '', kind: 'Service', name: 'edge', port: 80 }],
        },
      ],
    });
    const service = find(objects, 'Service', 'edge');
    expect([service.spec.type, service.spec.ports.map((p: Obj) => p.port)]).toEqual(['ClusterIP', [80]]);
    expect(checkObjects(objects)).toEqual([]);
    expect(runPolicy(objects).findings.map((f) => `${f.check}: ${f.message}`)).toEqual([]);
    // No HTTPRoute unless asked for.
    expect(objectsOf('prod').filter((o) => o.kind === 'HTTPRoute')).toEqual([]);
  });

  test('fails strict validation when an HTTPRoute carries a field the Gateway API does not define', () => {
    const objects = objectsWith('dev', { expose: 'gateway', gateway: { name: 'gw' } });
    const route = find(objects, 'HTTPRoute', 'edge');
    const bad = { ...route, spec: { ...route.spec, rules: [{ ...route.spec.rules[0], timeout: '5s' }] } };
    expect(checkObjects([bad]).map((p) => `${p.path}: ${p.message}`)).toEqual([
      "spec.rules[0].timeout: unknown field 'timeout' (not in the schema; allowed: backendRefs, filters, matches, timeouts)",
    ]);
  });
});

describe('bad input is refused at synth: field, value and fix', () => {
  test.each([
    [
      'a trusted proxy that is not a CIDR',
      { realIp: { trustedProxies: ['10.0.0.0/8', '10.1.2.3'], header: 'X-Forwarded-For' } },
      'edge.realIp.trustedProxies.1: "10.1.2.3" must be a CIDR such as "10.0.0.0/8" or "2001:db8::/32" (one address: "10.1.2.3/32")',
    ],
    [
      'realIp without trusted proxies',
      { realIp: { trustedProxies: [], header: 'X-Forwarded-For' } },
      "edge.realIp.trustedProxies: [] is empty: list the load balancer's CIDRs (only they may name the client), or leave realIp out",
    ],
    [
      'a realIp header nginx cannot take',
      { realIp: { trustedProxies: ['10.0.0.0/8'], header: 'X-Real-IP' } },
      'edge.realIp.header: "X-Real-IP" must be one of "X-Forwarded-For", "proxy_protocol"',
    ],
    [
      'a route override without a path',
      { rateLimit: { routes: [{ methods: ['POST'], requestsPerSecond: 20, burst: 5 }] } },
      "edge.rateLimit.routes.0.pathPrefix: (missing) is required: the path the limit applies to, e.g. '/api/v1/users' ('/' for every path)",
    ],
    [
      'a route path nginx would misread',
      { rateLimit: { routes: [{ pathPrefix: 'api/v1 users', requestsPerSecond: 20, burst: 5 }] } },
      `edge.rateLimit.routes.0.pathPrefix: "api/v1 users" must start with '/' and hold URL path characters only (no spaces, quotes, braces, ';' or '$')`,
    ],
    [
      'two routes for the same path and method',
      {
        rateLimit: {
          routes: [
            { pathPrefix: '/api/v1/users', methods: ['POST'], requestsPerSecond: 20, burst: 5 },
            { pathPrefix: '/api/v1/users', requestsPerSecond: 50, burst: 5 },
          ],
        },
      },
      'edge.rateLimit.routes.1.methods: (missing) overlaps routes[0] (POST /api/v1/users): one route per path prefix and method',
    ],
    [
      'an allowlist entry that is not a CIDR',
      { rateLimit: { allowlist: ['health-checker'] } },
      'edge.rateLimit.allowlist.0: "health-checker" must be a CIDR such as "10.0.0.0/8" or "2001:db8::/32" (one address: "10.1.2.3/32")',
    ],
    [
      'a gzip threshold below 0',
      { gzip: { minLengthBytes: -1 } },
      'edge.gzip.minLengthBytes: -1 must be an integer >= 0 (bytes; 1024 compresses what does not fit one TCP segment)',
    ],
    [
      'a gzip level above 9',
      { gzip: { level: 10 } },
      'edge.gzip.level: 10 must be an integer from 1 (fastest) to 9 (smallest)',
    ],
    [
      'a route rate of 0',
      { rateLimit: { routes: [{ pathPrefix: '/api/v1/users', requestsPerSecond: 0, burst: 5 }] } },
      'edge.rateLimit.routes.0.requestsPerSecond: 0 must be an integer >= 1 (requests per second per client IP)',
    ],
    [
      "expose 'gateway' without a Gateway",
      { expose: 'gateway', serviceType: 'ClusterIP' },
      "edge.gateway.name: (missing) is required with expose 'gateway': name the Gateway the HTTPRoute attaches to, e.g. gateway: { name: 'shared-gateway', namespace: 'infra' }",
    ],
    [
      "expose 'gateway' with a gateway block but no name",
      { expose: 'gateway', gateway: { namespace: 'infra' }, serviceType: 'ClusterIP' },
      "edge.gateway.name: (missing) is required with expose 'gateway': name the Gateway the HTTPRoute attaches to, e.g. gateway: { name: 'shared-gateway', namespace: 'infra' }",
    ],
    [
      "expose 'gateway' with the edge's own TLS",
      { expose: 'gateway', gateway: { name: 'gw' }, serviceType: 'ClusterIP', tls: { secretName: 'edge-tls' } },
      `edge.tls: {"secretName":"edge-tls"} cannot be combined with expose 'gateway': the Gateway terminates TLS (its listener's certificateRefs); remove edge.tls`,
    ],
    [
      "expose 'gateway' with a LoadBalancer Service",
      { expose: 'gateway', gateway: { name: 'gw' } },
      `edge.serviceType: "LoadBalancer" must be 'ClusterIP' with expose 'gateway': the Gateway is the load balancer in front of the edge Service`,
    ],
    [
      "a gateway with expose 'service'",
      { gateway: { name: 'gw' } },
      `edge.gateway: {"name":"gw"} is set but expose is 'service': set expose 'gateway' to attach the edge to it, or remove gateway`,
    ],
    [
      'an nginx image older than the conf needs',
      { image: 'nginxinc/nginx-unprivileged:1.25.3-alpine' },
      'edge.image: "nginxinc/nginx-unprivileged:1.25.3-alpine" must be nginx >= 1.27.3: nginx.conf uses `resolve` on the upstream server and `http2 on;`',
    ],
    [
      'a cert reload check period of 0',
      { tls: { secretName: 'edge-tls', reloadCheckSeconds: 0 } },
      'edge.tls.reloadCheckSeconds: 0 must be an integer from 1 to 300',
    ],
  ])('fails when the config has %s', (_what, edge, expected) => {
    expect(errorFor(edge)).toBe(`Invalid config for environment 'qa':\n  - ${expected}`);
  });
});

test('the nginx version rule reads the tag, wherever the registry is; other images and digests pass', () => {
  expect(() => resolveEnvironment(qa({ image: 'registry:5000/nginx-unprivileged:1.28.0' }))).not.toThrow();
  expect(() => resolveEnvironment(qa({ image: 'registry:5000/edge/proxy:1.0.0' }))).not.toThrow();
  expect(() => resolveEnvironment(qa({ image: `nginx@sha256:${'a'.repeat(64)}` }))).not.toThrow();
  expect(errorFor({ image: 'registry:5000/nginx:1.26.3' })).toContain('must be nginx >= 1.27.3');
});

describe('EdgeProxy in a bare chart refuses the same input (library users)', () => {
  const upstream = { host: 'api-headless.default.svc.cluster.local', port: 8000, component: 'api' };
  test.each([
    [
      { realIp: { trustedProxies: ['nope'], header: 'X-Forwarded-For' as const } },
      `'realIp.trustedProxies[0]' (nope) must be a CIDR such as "10.0.0.0/8" or "2001:db8::/32" (one address: "10.1.2.3/32")`,
    ],
    [
      {
        rateLimit: { requestsPerSecond: 100, burst: 50, routes: [{ pathPrefix: '', requestsPerSecond: 20, burst: 5 }] },
      },
      `'rateLimit.routes[0].pathPrefix' () is required: the path the limit applies to, e.g. '/api/v1/users' ('/' for every path)`,
    ],
    [
      { gzip: { enabled: true, minLengthBytes: -5, level: 1 } },
      "'gzip.minLengthBytes' (-5) must be an integer >= 0 (bytes; 1024 compresses what does not fit one TCP segment)",
    ],
    [
      { expose: 'gateway' as const, serviceType: 'ClusterIP' as const },
      "'gateway.name' () is required with expose 'gateway': name the Gateway the HTTPRoute attaches to, e.g. gateway: { name: 'shared-gateway', namespace: 'infra' }",
    ],
  ])('fails when given %j', (props, expected) => {
    expect(() => new EdgeProxy(Testing.chart(), 'edge', { upstream, ...props })).toThrow(expected);
  });

  test('a partial rateLimit or gzip keeps the defaults of what it leaves out', () => {
    const edge = new EdgeProxy(Testing.chart(), 'edge', {
      upstream,
      gzip: { enabled: true, minLengthBytes: 2048, level: 1 },
    });
    expect(edge.nginxConf).toContain('gzip_min_length 2048;');
    expect(edge.nginxConf).toContain('limit_req_zone $binary_remote_addr zone=per_client:10m rate=100r/s;');
  });
});

describe('the runner spells the conf for the nginx it runs (rendered for the image, 1.28)', () => {
  const conf = ['server {', '    listen 8443 ssl default_server;', '    http2 on;', '    server_name _;', '}'].join(
    '\n',
  );
  test('nginx >= 1.25.1 runs it as it is', () => {
    expect(forNginx(conf, [1, 28, 0])).toBe(conf);
    expect(forNginx(conf, [1, 25, 1])).toBe(conf);
  });
  test("nginx 1.22 (Debian 12) gets the listen parameter instead: the same server's listener, nothing else", () => {
    expect(forNginx(conf, [1, 22, 1])).toBe(
      ['server {', '    listen 8443 ssl http2 default_server;', '    server_name _;', '}'].join('\n'),
    );
  });
  test('a conf without HTTP/2 is left alone', () => {
    const plain = conf.replace('    http2 on;\n', '');
    expect(forNginx(plain, [1, 22, 1])).toBe(plain);
  });
});
