/**
 * BigQuery jobs under deterministic ids, shared by every writer (loader, repair, dead-letter replay,
 * compliance): a rerun of the same step after a crash finds its job id taken and runs under a related
 * one (`_2`, `_3`…), visible in the job history, never under a random id.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import type { ParameterisedSql } from './writer';

/** BigQuery's answer to a job id that was already used (409 / "already exists"). */
export const isDuplicateJob = (err: unknown): boolean => {
  const e = err as { code?: number; message?: string };
  return e?.code === 409 || /already (exists|created)/i.test(e?.message ?? '');
};

/**
 * Runs `attempt(jobId)` with a deterministic job id, then `_2`, `_3`… when that id was already used
 * (by a run that crashed after creating the job): the retry is visible under a related id, never random.
 */
export async function withJobIdRetry<T>(jobBase: string, attempt: (jobId: string) => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n === 1 ? jobBase : `${jobBase}_${n}`);
    } catch (err) {
      if (isDuplicateJob(err) && n < 5) continue;
      throw err;
    }
  }
}

/** A DML statement as a query job under `jobBase` (see {@link withJobIdRetry}), waited for. */
export function runDml(
  bq: BigQuery,
  location: string,
  sql: string,
  jobBase: string,
  params?: Record<string, unknown>,
  types?: ParameterisedSql['types'],
): Promise<void> {
  return withJobIdRetry(jobBase, async (jobId) => {
    const [job] = await bq.createQueryJob({
      query: sql,
      jobId,
      location,
      ...(params ? { params, types } : {}),
    });
    await job.getQueryResults();
  });
}
