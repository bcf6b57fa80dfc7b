/**
 * `node tools/run.js tools/runtime/metrics-check/list.ts [env]`: every metric name the
 * shipped rules and dashboards of an environment use, with where, as Markdown.
 * test/metrics-existence.test.ts proves each one is scraped or recorded.
 */
import { loadEnvironment } from '../../../stacks/environments';
import { metricUses } from './used-metrics';

const env = process.argv[2] ?? 'prod';
const byMetric = new Map<string, Set<string>>();
for (const u of metricUses(loadEnvironment(env))) {
  byMetric.set(u.metric, (byMetric.get(u.metric) ?? new Set()).add(u.where.split(' / ')[0]));
}
console.log(`| metric (${env}) | used by |\n|---|---|`);
for (const [metric, where] of [...byMetric.entries()].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`| \`${metric}\` | ${[...where].join(', ')} |`);
}
