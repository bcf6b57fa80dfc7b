/** Platform overview: API request rate, errors, latency quantiles, pods against the HPA bounds. */
import { SERVICE_METRICS } from '../../../service/src/contract';
import type { MonitoredPlatform } from '../monitored';
import { RECORDED, RULE_COMPONENTS } from '../alert-rules';
import { dashboard, type Dashboard, stat, timeseries } from './panels';

export function overviewDashboard(config: MonitoredPlatform): Dashboard {
  const hpa = config.api.autoscaling;
  const count = `${SERVICE_METRICS.httpRequestDuration}_count`;
  return dashboard('fastnext-overview', 'FastNext / Platform overview', [
    timeseries('Requests per second', 'reqps', { all: RECORDED.requestRate }),
    timeseries('Requests per second by route', 'reqps', { '{{route}}': `sum by (route) (rate(${count}[5m]))` }),
    timeseries('5xx ratio', 'percentunit', { '5xx': RECORDED.errorRatio }, { min: 0 }),
    timeseries('Responses by status code', 'reqps', { '{{status_code}}': `sum by (status_code) (rate(${count}[5m]))` }),
    timeseries(
      'Latency p50 / p95 / p99',
      's',
      {
        p50: RECORDED.latencyP50,
        p95: RECORDED.latencyP95,
        p99: RECORDED.latencyP99,
      },
      { width: 24 },
    ),
    timeseries(
      'API pods vs HPA bounds',
      'short',
      {
        pods: `count(up{app="${RULE_COMPONENTS.api}"})`,
        'HPA min': `vector(${hpa.minReplicas})`,
        'HPA max': `vector(${hpa.maxReplicas})`,
      },
      { description: 'Pods Prometheus scrapes (up) against the HPA min/max rendered from the config.' },
    ),
    timeseries(
      'API cache hit ratio',
      'percentunit',
      {
        'hit ratio': RECORDED.cacheHitRatio,
        // The part of the lookups the pods' in-process tier answered (no Redis round trip).
        'answered in-process':
          `sum(rate(${SERVICE_METRICS.cacheLocalHits}[5m])) / ` +
          `(sum(rate(${SERVICE_METRICS.cacheHits}[5m])) + sum(rate(${SERVICE_METRICS.cacheMisses}[5m])))`,
      },
      { min: 0, max: 1 },
    ),
    timeseries('DB pool: connections / idle / waiting', 'short', {
      '{{pool}} total': `sum by (pool) (${SERVICE_METRICS.dbPoolTotal})`,
      '{{pool}} idle': `sum by (pool) (${SERVICE_METRICS.dbPoolIdle})`,
      '{{pool}} waiting': `sum by (pool) (${SERVICE_METRICS.dbPoolWaiting})`,
    }),
    timeseries('DB queries by target', 'ops', {
      '{{target}}': `sum by (target) (rate(${SERVICE_METRICS.dbQueries}[5m]))`,
    }),
    stat('Targets down', 'short', { down: 'count(up == 0) or vector(0)' }),
  ]);
}
