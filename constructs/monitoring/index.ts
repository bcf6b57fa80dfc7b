/**
 * The observability tier: Prometheus (scrapes every tier's annotated metrics
 * port, evaluates the rendered rules) and Grafana (provisioned datasource and
 * dashboards). kube-state-metrics is deliberately absent: the rules use only
 * metrics the tiers and Prometheus itself produce (see config-files/alert-rules.ts).
 */
import type * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../../stacks/config';
import { Grafana } from './grafana';
import { Prometheus, type ScrapeTarget } from './prometheus';

export { Grafana, GRAFANA_ADMIN_KEYS, DASHBOARD_CONFIGMAP_LIMIT_BYTES } from './grafana';
export { Prometheus, DISCOVERY_RULE, type ScrapeTarget } from './prometheus';

export interface MonitoringProps {
  readonly config: EnvironmentConfig;
  /** Every component's metrics port, for Prometheus' egress NetworkPolicy. */
  readonly scrapeTargets: readonly ScrapeTarget[];
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly kplus.k8s.NetworkPolicyPeer[];
}

export class Monitoring extends Construct {
  readonly prometheus: Prometheus;
  readonly grafana: Grafana;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { config, scrapeTargets, dnsResolvers } = props;
    if (!config.monitoring.enabled) {
      throw new Error(
        "Monitoring: 'config.monitoring.enabled' (false) must be true; do not create the construct instead",
      );
    }
    this.prometheus = new Prometheus(this, 'prometheus', {
      config,
      scrapeTargets,
      clientComponent: Grafana.COMPONENT,
      dnsResolvers,
    });
    this.grafana = new Grafana(this, 'grafana', {
      config,
      dnsResolvers,
      prometheus: {
        serviceName: this.prometheus.serviceName,
        port: this.prometheus.port,
        component: this.prometheus.component,
      },
    });
  }
}
