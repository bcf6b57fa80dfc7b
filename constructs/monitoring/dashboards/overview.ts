/** Platform overview: API request rate, errors, latency quantiles, pods against the HPA bounds. */
import { SERVICE_METRICS } from '../../../service/src/contract';
import type { MonitoredPlatform } from '../monitored';
import { RECORDED, RULE_COMPONENTS } from '../alert-rules';
import { dashboard, type Dashboard } from './panels';

export function overviewDashboard(config: MonitoredPlatform): Dashboard {
  const hpa = config.api.autoscaling;
  const count = `${SERVICE_METRICS.httpRequestDuration}_count`;
  return dashboard('fastnext-overview', 'FastNext / Platform overview', [
    { title: 'Requests per second', unit: 'reqps', targets: [{ expr: RECORDED.requestRate, legendFormat: 'all' }] },
    {
      title: 'Requests per second by route',
      unit: 'reqps',
      targets: [{ expr: `sum by (route) (rate(${count}[5m]))`, legendFormat: '{{route}}' }],
    },
    {
      title: '5xx ratio',
      unit: 'percentunit',
      min: 0,
      targets: [{ expr: RECORDED.errorRatio, legendFormat: '5xx' }],
    },
    {
      title: 'Responses by status code',
      unit: 'reqps',
      targets: [{ expr: `sum by (status_code) (rate(${count}[5m]))`, legendFormat: '{{status_code}}' }],
    },
    {
      title: 'Latency p50 / p95 / p99',
      unit: 's',
      width: 24,
      targets: [
        { expr: RECORDED.latencyP50, legendFormat: 'p50' },
        { expr: RECORDED.latencyP95, legendFormat: 'p95' },
        { expr: RECORDED.latencyP99, legendFormat: 'p99' },
      ],
    },
    {
      title: 'API pods vs HPA bounds',
      unit: 'short',
      description: 'Pods Prometheus scrapes (up) against the HPA min/max rendered from the config.',
      targets: [
        { expr: `count(up{app="${RULE_COMPONENTS.api}"})`, legendFormat: 'pods' },
        { expr: `vector(${hpa.minReplicas})`, legendFormat: 'HPA min' },
        { expr: `vector(${hpa.maxReplicas})`, legendFormat: 'HPA max' },
      ],
    },
    {
      title: 'API cache hit ratio',
      unit: 'percentunit',
      min: 0,
      max: 1,
      targets: [
        { expr: RECORDED.cacheHitRatio, legendFormat: 'hit ratio' },
        {
          // The part of the lookups the pods' in-process tier answered (no Redis round trip).
          expr:
            `sum(rate(${SERVICE_METRICS.cacheLocalHits}[5m])) / ` +
            `(sum(rate(${SERVICE_METRICS.cacheHits}[5m])) + sum(rate(${SERVICE_METRICS.cacheMisses}[5m])))`,
          legendFormat: 'answered in-process',
        },
      ],
    },
    {
      title: 'DB pool: connections / idle / waiting',
      unit: 'short',
      targets: [
        { expr: `sum by (pool) (${SERVICE_METRICS.dbPoolTotal})`, legendFormat: '{{pool}} total' },
        { expr: `sum by (pool) (${SERVICE_METRICS.dbPoolIdle})`, legendFormat: '{{pool}} idle' },
        { expr: `sum by (pool) (${SERVICE_METRICS.dbPoolWaiting})`, legendFormat: '{{pool}} waiting' },
      ],
    },
    {
      title: 'DB queries by target',
      unit: 'ops',
      targets: [{ expr: `sum by (target) (rate(${SERVICE_METRICS.dbQueries}[5m]))`, legendFormat: '{{target}}' }],
    },
    {
      title: 'Targets down',
      type: 'stat',
      unit: 'short',
      targets: [{ expr: 'count(up == 0) or vector(0)', legendFormat: 'down' }],
    },
  ]);
}
