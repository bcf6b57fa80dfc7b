/**
 * Tiny builders for Grafana dashboard JSON (schemaVersion 39, Grafana 11).
 * Expressions use fixed `[5m]` windows rather than `$__rate_interval` so each one
 * is plain PromQL that a real Prometheus can be asked to evaluate in jest.
 */

/** uid of the provisioned Prometheus datasource (grafana-provisioning.ts). */
export const DATASOURCE_UID = 'prometheus';

export interface Target {
  readonly expr: string;
  readonly legendFormat: string;
}

export interface Panel {
  readonly id: number;
  readonly type: 'timeseries' | 'stat';
  readonly title: string;
  readonly description?: string;
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly datasource: { type: 'prometheus'; uid: string };
  readonly targets: (Target & { refId: string; datasource: { type: 'prometheus'; uid: string } })[];
  readonly fieldConfig: { defaults: { unit: string; min?: number; max?: number }; overrides: [] };
  readonly options: Record<string, unknown>;
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly tags: string[];
  readonly panels: Panel[];
}

export interface PanelSpec {
  readonly title: string;
  readonly unit: string;
  readonly targets: Target[];
  readonly type?: 'timeseries' | 'stat';
  readonly description?: string;
  /** 1–24 grid columns. @default 12 */
  readonly width?: number;
  readonly min?: number;
  readonly max?: number;
}

const ds = { type: 'prometheus' as const, uid: DATASOURCE_UID };

/** Panel options besides its title, unit and queries. */
export type PanelOptions = Omit<PanelSpec, 'title' | 'unit' | 'targets' | 'type'>;

/**
 * A time-series panel: `targets` maps each legend to its PromQL expression, in the
 * order the queries get their refIds (A, B, ...).
 */
export function timeseries(
  title: string,
  unit: string,
  targets: Record<string, string>,
  options: PanelOptions = {},
): PanelSpec {
  return { title, unit, targets: targetsOf(targets), ...options };
}

/** A stat panel (last value), with the same arguments as `timeseries`. */
export function stat(...args: Parameters<typeof timeseries>): PanelSpec {
  return { ...timeseries(...args), type: 'stat' };
}

function targetsOf(targets: Record<string, string>): Target[] {
  return Object.entries(targets).map(([legendFormat, expr]) => ({ expr, legendFormat }));
}

/** Lays panels out left to right, 8 rows high, wrapping at 24 columns. */
export function dashboard(uid: string, title: string, specs: PanelSpec[]): Dashboard {
  let x = 0;
  let y = 0;
  const panels = specs.map((s, i): Panel => {
    const w = s.width ?? 12;
    if (x + w > 24) {
      x = 0;
      y += 8;
    }
    const gridPos = { h: 8, w, x, y };
    x += w;
    return {
      id: i + 1,
      type: s.type ?? 'timeseries',
      title: s.title,
      ...(s.description ? { description: s.description } : {}),
      gridPos,
      datasource: ds,
      targets: s.targets.map((t, j) => ({ ...t, refId: String.fromCharCode(65 + j), datasource: ds })),
      fieldConfig: { defaults: { unit: s.unit, min: s.min, max: s.max }, overrides: [] },
      options: s.type === 'stat' ? { reduceOptions: { calcs: ['lastNotNull'] } } : { legend: { showLegend: true } },
    };
  });
  return { uid, title, tags: ['fastnext'], panels };
}

/** The dashboard JSON Grafana's file provider reads. */
export function renderDashboard(d: Dashboard): string {
  return `${JSON.stringify(
    {
      uid: d.uid,
      title: d.title,
      tags: d.tags,
      editable: false,
      schemaVersion: 39,
      time: { from: 'now-6h', to: 'now' },
      refresh: '30s',
      timezone: 'utc',
      panels: d.panels,
    },
    null,
    2,
  )}\n`;
}

/** Every PromQL expression of a dashboard, with the panel it sits in. */
export function dashboardExpressions(d: Dashboard): { panel: string; expr: string }[] {
  return d.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
}
