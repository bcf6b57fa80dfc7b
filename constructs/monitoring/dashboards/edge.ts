/**
 * Edge (nginx). The nginx-prometheus-exporter reads stub_status, which has
 * connection and request counters but no status codes and no upstream timing:
 * 429s show as requests nginx answered itself (edge - API), and upstream
 * latency as the API's own request latency.
 */
import { SERVICE_METRICS } from '../../../service/src/contract';
import type { MonitoredPlatform } from '../monitored';
import { RECORDED, RULE_COMPONENTS } from '../alert-rules';
import { dashboard, type Dashboard, timeseries } from './panels';

export function edgeDashboard(config: MonitoredPlatform): Dashboard {
  const bucket = `${SERVICE_METRICS.httpRequestDuration}_bucket`;
  return dashboard('fastnext-edge', 'FastNext / Edge (nginx)', [
    timeseries('Edge requests per second', 'reqps', {
      edge: RECORDED.edgeRequestRate,
      'reached the API': RECORDED.requestRate,
    }),
    timeseries(
      'Answered by nginx itself (429s and other edge replies)',
      'percentunit',
      { 'not proxied': RECORDED.edgeUnproxiedRatio },
      {
        min: 0,
        description: `Upper bound of the 429 ratio; alert above ${config.monitoring.alerts.edge429Ratio * 100} %.`,
      },
    ),
    timeseries('Upstream (API) latency p95 by route', 's', {
      '{{route}}': `histogram_quantile(0.95, sum by (le, route) (rate(${bucket}[5m])))`,
    }),
    timeseries('Connections', 'short', {
      active: 'sum(nginx_connections_active)',
      reading: 'sum(nginx_connections_reading)',
      writing: 'sum(nginx_connections_writing)',
      'idle keepalive': 'sum(nginx_connections_waiting)',
    }),
    timeseries(
      'Dropped connections per second',
      'cps',
      { dropped: 'sum(rate(nginx_connections_accepted[5m])) - sum(rate(nginx_connections_handled[5m]))' },
      { description: 'accepted - handled: non-zero means worker_connections is exhausted.' },
    ),
    timeseries('Edge pods', 'short', {
      'nginx up': `sum(nginx_up{app="${RULE_COMPONENTS.edge}"})`,
      'HPA max': `vector(${config.edge.autoscaling.maxReplicas})`,
    }),
  ]);
}
