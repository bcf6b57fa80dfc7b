/**
 * Edge (nginx). The nginx-prometheus-exporter reads stub_status, which has
 * connection and request counters but no status codes and no upstream timing:
 * 429s show as requests nginx answered itself (edge - API), and upstream
 * latency as the API's own request latency.
 */
import { SERVICE_METRICS } from '../../../service/src/contract';
import type { MonitoredPlatform } from '../monitored';
import { RECORDED, RULE_COMPONENTS } from '../alert-rules';
import { dashboard, type Dashboard } from './panels';

export function edgeDashboard(config: MonitoredPlatform): Dashboard {
  const bucket = `${SERVICE_METRICS.httpRequestDuration}_bucket`;
  return dashboard('fastnext-edge', 'FastNext / Edge (nginx)', [
    {
      title: 'Edge requests per second',
      unit: 'reqps',
      targets: [
        { expr: RECORDED.edgeRequestRate, legendFormat: 'edge' },
        { expr: RECORDED.requestRate, legendFormat: 'reached the API' },
      ],
    },
    {
      title: 'Answered by nginx itself (429s and other edge replies)',
      unit: 'percentunit',
      min: 0,
      description: `Upper bound of the 429 ratio; alert above ${config.monitoring.alerts.edge429Ratio * 100} %.`,
      targets: [{ expr: RECORDED.edgeUnproxiedRatio, legendFormat: 'not proxied' }],
    },
    {
      title: 'Upstream (API) latency p95 by route',
      unit: 's',
      targets: [
        {
          expr: `histogram_quantile(0.95, sum by (le, route) (rate(${bucket}[5m])))`,
          legendFormat: '{{route}}',
        },
      ],
    },
    {
      title: 'Connections',
      unit: 'short',
      targets: [
        { expr: 'sum(nginx_connections_active)', legendFormat: 'active' },
        { expr: 'sum(nginx_connections_reading)', legendFormat: 'reading' },
        { expr: 'sum(nginx_connections_writing)', legendFormat: 'writing' },
        { expr: 'sum(nginx_connections_waiting)', legendFormat: 'idle keepalive' },
      ],
    },
    {
      title: 'Dropped connections per second',
      unit: 'cps',
      description: 'accepted - handled: non-zero means worker_connections is exhausted.',
      targets: [
        {
          expr: 'sum(rate(nginx_connections_accepted[5m])) - sum(rate(nginx_connections_handled[5m]))',
          legendFormat: 'dropped',
        },
      ],
    },
    {
      title: 'Edge pods',
      unit: 'short',
      targets: [
        { expr: `sum(nginx_up{app="${RULE_COMPONENTS.edge}"})`, legendFormat: 'nginx up' },
        { expr: `vector(${config.edge.autoscaling.maxReplicas})`, legendFormat: 'HPA max' },
      ],
    },
  ]);
}
