/**
 * Idempotent provisioning of the dataset and the tables as code (`src/domain/bigquery-schema.ts`),
 * and additive schema evolution: missing columns are added with a table patch (`tables.patch`; the
 * emulator has no `tables.update`); a column whose type or mode differs is a breaking change and
 * fails loudly with what to do. Safe to run from several workers at once.
 */
import type { BigQuery, Table } from '@google-cloud/bigquery';
import type { GcpConfig } from '../../config';
import {
  TABLES,
  breakingChangeAdvice,
  diffSchema,
  type ActualColumn,
  type Column,
  type TableSpec,
} from '../../domain/bigquery-schema';
import type { Logger } from '../../observability/logger';
import { breakingSchemaFailure, classifyBigQueryError } from './errors';

export type BigQueryTarget = Pick<GcpConfig, 'projectId' | 'dataset' | 'location' | 'tables'>;

/** The physical table id of each table spec, from the configuration. */
export function tableIds(gcp: BigQueryTarget): Record<TableSpec['name'], string> {
  return {
    posts: gcp.tables.posts,
    posts_dead_letter: gcp.tables.deadLetter,
    load_runs: gcp.tables.loadRuns,
    load_fences: gcp.tables.loadFences,
    load_repairs: gcp.tables.loadRepairs,
    dead_letter_replays: gcp.tables.deadLetterReplays,
    compliance_actions: gcp.tables.complianceActions,
  };
}

export const fqn = (gcp: Pick<GcpConfig, 'projectId' | 'dataset'>, tableId: string) =>
  `\`${gcp.projectId}.${gcp.dataset}.${tableId}\``;

const alreadyExists = (err: unknown) => {
  const e = err as { code?: number; message?: string };
  return e?.code === 409 || /already (exists|created)/i.test(e?.message ?? '');
};

const toField = (c: Column) => ({
  name: c.name,
  type: c.type,
  mode: c.mode,
  ...(c.description ? { description: c.description } : {}),
});

export async function ensureDataset(bq: BigQuery, gcp: BigQueryTarget): Promise<void> {
  const ds = bq.dataset(gcp.dataset, { location: gcp.location });
  try {
    const [exists] = await ds.exists();
    if (exists) return;
    await ds.create({ location: gcp.location });
  } catch (err) {
    if (alreadyExists(err)) return;
    throw classifyBigQueryError(err, { operation: 'create dataset', table: gcp.dataset });
  }
}

/**
 * Creates the table if it is missing, otherwise adds the columns it lacks. `columns` defaults to the
 * spec's; pass more (e.g. new Post fields) to evolve. Returns the names of the columns added.
 */
export async function ensureTable(
  bq: BigQuery,
  gcp: BigQueryTarget,
  tableId: string,
  spec: TableSpec,
  columns: Column[] = spec.columns,
  logger?: Logger,
): Promise<string[]> {
  const table = bq.dataset(gcp.dataset).table(tableId);
  const where = `${gcp.dataset}.${tableId}`;
  let actual: ActualColumn[] | undefined;
  try {
    actual = await readColumns(table);
  } catch (err) {
    const e = err as { code?: number };
    if (e?.code !== 404) throw classifyBigQueryError(err, { operation: 'get table', table: where });
  }
  if (actual === undefined) {
    try {
      await table.create({
        schema: { fields: columns.map(toField) },
        description: spec.description,
        timePartitioning: { type: 'DAY', field: spec.partitionField },
        clustering: { fields: spec.clustering },
      });
      logger?.info({ table: where }, 'created table');
      return [];
    } catch (err) {
      if (!alreadyExists(err)) throw classifyBigQueryError(err, { operation: 'create table', table: where });
      actual = await readColumns(table).catch((e) => {
        throw classifyBigQueryError(e, { operation: 'get table', table: where });
      });
    }
  }
  return addMissingColumns(table, where, columns, actual, logger);
}

async function readColumns(table: Table): Promise<ActualColumn[]> {
  const [meta] = await table.getMetadata();
  return ((meta.schema?.fields ?? []) as ActualColumn[]).map((f) => ({ ...f }));
}

async function addMissingColumns(
  table: Table,
  where: string,
  wanted: Column[],
  actual: ActualColumn[],
  logger?: Logger,
): Promise<string[]> {
  const diff = diffSchema(where, wanted, actual);
  if (diff.breaking.length > 0) {
    throw breakingSchemaFailure(where, diff.breaking, breakingChangeAdvice(where));
  }
  if (diff.add.length === 0) return [];
  try {
    await table.setMetadata({ schema: { fields: [...actual, ...diff.add.map(toField)] } });
  } catch (err) {
    // Another worker may have added the same columns: re-read and check before failing.
    const again = await readColumns(table).catch(() => undefined);
    if (again && diffSchema(where, wanted, again).add.length === 0) return [];
    throw classifyBigQueryError(err, { operation: 'patch schema', table: where });
  }
  const added = diff.add.map((c) => c.name);
  logger?.info({ table: where, added }, 'added columns (additive schema evolution)');
  return added;
}

export interface ProvisionReport {
  dataset: string;
  tables: Record<TableSpec['name'], { tableId: string; columnsAdded: string[] }>;
}

/** Ensures the dataset and the tables (`TABLES`) exist with at least the columns of the code. */
export async function ensureTables(
  bq: BigQuery,
  gcp: BigQueryTarget,
  logger?: Logger,
): Promise<ProvisionReport> {
  await ensureDataset(bq, gcp);
  const ids = tableIds(gcp);
  const report = { dataset: gcp.dataset, tables: {} } as ProvisionReport;
  for (const spec of TABLES) {
    const columnsAdded = await ensureTable(bq, gcp, ids[spec.name], spec, spec.columns, logger);
    report.tables[spec.name] = { tableId: ids[spec.name], columnsAdded };
  }
  return report;
}
