/**
 * Idempotent create-or-replace of the views of `src/domain/views.ts`, run with the tables (setup, the
 * dashboard's start-up). A view whose source table does not exist yet (e.g. `dq_results` before the
 * quality workflow's first run) is skipped and reported, not failed: run it again later.
 *
 * Real BigQuery replaces a view atomically (`CREATE OR REPLACE VIEW`). The emulator refuses that over
 * an existing view ("already created"); there an existing view is kept as it is. Dropping and
 * creating it again, as this did before, cost the emulator's SQL catalog about 17 MiB for good on
 * every view at every setup and dashboard start (`tsx dev/bench/emulator-growth.ts ddl`), and the
 * emulator's views are only for tools that read them by name: the dashboard inlines the views' SQL
 * there. A changed view definition reaches a local emulator with a fresh `.local/bigquery.db`.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { GcpConfig } from '../../config';
import { VIEWS, createViewDdl, type ViewName, type ViewSources } from '../../domain/views';
import type { Logger } from '../../observability/logger';

export type ViewTarget = Pick<GcpConfig, 'projectId' | 'dataset' | 'location' | 'tables'>;

export interface ViewsReport {
  created: ViewName[];
  /** Already there on the emulator, which cannot replace a view: left as they are. */
  kept: ViewName[];
  skipped: { view: ViewName; reason: string }[];
}

const alreadyThere = (err: unknown) =>
  /already (created|exists)|duplicate/i.test((err as { message?: string })?.message ?? '');

async function runDdl(bq: BigQuery, gcp: ViewTarget, query: string): Promise<void> {
  await bq.query({ query, location: gcp.location });
}

async function tableExists(bq: BigQuery, gcp: ViewTarget, tableId: string): Promise<boolean> {
  const [exists] = await bq.dataset(gcp.dataset).table(tableId).exists();
  return exists;
}

/** Creates or replaces every view whose source tables exist. Safe to run concurrently and repeatedly. */
export async function ensureViews(bq: BigQuery, gcp: ViewTarget, logger?: Logger): Promise<ViewsReport> {
  const src: ViewSources = { projectId: gcp.projectId, dataset: gcp.dataset, tables: gcp.tables };
  const report: ViewsReport = { created: [], kept: [], skipped: [] };
  const existing = new Map<string, boolean>();
  for (const key of new Set(VIEWS.flatMap((v) => v.reads))) {
    existing.set(key, await tableExists(bq, gcp, gcp.tables[key]));
  }
  for (const view of VIEWS) {
    const missing = view.reads.filter((key) => !existing.get(key)).map((key) => gcp.tables[key]);
    if (missing.length > 0) {
      report.skipped.push({ view: view.name, reason: `table ${missing.join(', ')} does not exist yet` });
      continue;
    }
    const ddl = createViewDdl(src, view);
    try {
      await runDdl(bq, gcp, ddl);
    } catch (err) {
      if (!alreadyThere(err)) {
        throw new Error(`create view ${gcp.dataset}.${view.name}: ${(err as Error).message}`, { cause: err });
      }
      // Emulator: no CREATE OR REPLACE over an existing view; keep it (see the module comment).
      report.kept.push(view.name);
      continue;
    }
    report.created.push(view.name);
  }
  logger?.info({ dataset: gcp.dataset, ...report }, 'views ready');
  return report;
}
