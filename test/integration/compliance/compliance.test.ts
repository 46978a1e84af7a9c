/**
 * Compliance deletions on the real local stack (issue #14): the X stand-in over real HTTP (its
 * batch compliance jobs and the events it decides itself), the BigQuery emulator, the real Temporal
 * dev server and a worker with the stream worker's own activities. Posts the stand-in created are
 * put into `posts`; one compliance run submits them to X in several jobs, deletes exactly the posts
 * the stand-in decided, journals each in `compliance_actions`, and leaves the others alone;
 * re-applying the same jobs changes nothing; a redact-mode run nulls text and author instead; the
 * supervisor starts the compliance child and keeps the state it reports.
 */
import type { BigQuery } from '@google-cloud/bigquery';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureTables } from '../../../src/adapters/bigquery/provision';
import type { AppConfig } from '../../../src/config';
import {
  complianceWorkflowId,
  supervisorWorkflowId,
  type ComplianceRunSummary,
  type PipelineStatus,
} from '../../../src/domain/pipeline-status';
import { createLogger } from '../../../src/observability/logger';
import type { complianceWorkflow } from '../../../src/workflows/compliance';
import {
  reapplyComplianceJobUpdate,
  runComplianceNowUpdate,
  statusQuery,
  stopSignal,
} from '../../../src/workflows/messages';
import { buildStreamActivities } from '../../../src/workers/stream-worker';
import { testConfig, uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';

jest.setTimeout(240_000);

const logger = createLogger({ level: 'warn', format: 'json' });
let standin: XStandin;
let config: AppConfig;
let bq: BigQuery;
let client: Client;
let worker: Worker;
let workerRun: Promise<void>;
let closeActivities: () => Promise<void>;

const table = (t: string) => `\`${config.gcp.projectId}.${config.gcp.dataset}.${t}\``;
async function query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
  const [rows] = await bq.query({
    query: sql
      .replace(/\bDS\.posts\b/g, table(config.gcp.tables.posts))
      .replace(/\bDS\.compliance_actions\b/g, table(config.gcp.tables.complianceActions)),
  });
  return rows as T[];
}

/** Creates `n` more posts in the stand-in's world; returns their ids. */
async function createPosts(n: number): Promise<string[]> {
  const before = standin.world().created.length;
  standin.setRate(500);
  await eventually(
    async () => standin.world().created.length,
    (c) => c >= before + n,
    { timeoutMs: 20_000, intervalMs: 20 },
  );
  standin.setRate(0);
  return standin
    .world()
    .created.slice(before, before + n)
    .map((p) => p.id);
}

/** Puts posts into `posts` as the loader would have (text, author, raw, ingested now). */
async function ingest(ids: string[]): Promise<void> {
  const now = new Date().toISOString();
  const values = ids
    .map(
      (id) =>
        `('${id}', 'text of ${id}', TIMESTAMP '${now}', 'a${id}', 'user${id}', 'User ${id}', '{"data":{"id":"${id}"}}', 'en', TIMESTAMP '${now}', 'run_${id}')`,
    )
    .join(',\n');
  const [job] = await bq.createQueryJob({
    query: `INSERT INTO ${table(config.gcp.tables.posts)}
      (id, text, created_at, author_id, author_username, author_name, raw, lang, ingested_at, load_run_id)
      VALUES ${values}`,
    jobId: uniqueName('ingest'),
  });
  await job.getQueryResults();
}

async function startCompliance(
  mode: 'delete' | 'redact',
  watermark: string | null,
): Promise<WorkflowHandle<typeof complianceWorkflow>> {
  return client.workflow.start<typeof complianceWorkflow>('complianceWorkflow', {
    taskQueue: config.temporal.streamTaskQueue,
    workflowId: uniqueName(`compliance_${mode}`),
    args: [
      {
        streamName: 'it',
        intervalMs: 24 * 3600_000,
        mode,
        maxIdsPerJob: 25,
        settleMs: 0,
        pollIntervalMs: 100,
        ...(watermark ? { state: { watermark, runs: 1, idsChecked: 0, events: 0, rowsAffected: 0 } } : {}),
      },
    ],
  });
}

beforeAll(async () => {
  standin = await startXStandin({
    rate: 0,
    seed: 11,
    tickMs: 5,
    rules: [{ value: 'tesla', tag: 'tesla' }],
    complianceFraction: 0.3,
    complianceProcessingMs: 300,
  });
  const name = uniqueName('it_compliance');
  config = testConfig({
    BIGQUERY_DATASET: name,
    X_API_BASE_URL: standin.url,
    X_BEARER_TOKEN: 'test-token',
    TEMPORAL_STREAM_TASK_QUEUE: `${name}-stream`,
  });
  bq = createBigQueryClient(config.gcp);
  await ensureTables(bq, config.gcp);
  const connection = await Connection.connect({ address: config.temporal.address });
  client = new Client({ connection, namespace: config.temporal.namespace });
  const built = buildStreamActivities(config, logger, { client });
  closeActivities = built.close;
  worker = await Worker.create({
    connection: await NativeConnection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.streamTaskQueue,
    workflowsPath: require.resolve('../../../src/workflows'),
    activities: built.activities,
  });
  workerRun = worker.run();
}, 180_000);

afterAll(async () => {
  worker?.shutdown();
  await workerRun?.catch(() => undefined);
  await closeActivities?.();
  await client?.connection.close();
  await bq
    ?.dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
  await standin?.close();
});

let deleteRun: ComplianceRunSummary;

test('a run deletes exactly the posts X reports, journals each, and re-running its jobs changes nothing', async () => {
  const ids = await createPosts(60);
  const foreign = '1234567890123'; // a post the stand-in did not create: never reported
  await ingest([...ids, foreign]);
  const expected = standin.complianceDecide(ids);
  expect(expected.size).toBeGreaterThan(3);

  const wf = await startCompliance('delete', null);
  deleteRun = await wf.executeUpdate(runComplianceNowUpdate);
  expect(deleteRun).toMatchObject({ ok: true, mode: 'delete', since: null, idsChecked: 61 });
  // 61 ids, 25 per job: three X jobs, one after another.
  expect(deleteRun.jobs.map((j) => [j.ids, j.status])).toEqual([
    [25, 'complete'],
    [25, 'complete'],
    [11, 'complete'],
  ]);
  expect(deleteRun.events).toBe(expected.size);
  expect(deleteRun.rowsAffected).toBe(expected.size);

  // The stand-in's ledger: what it decided, per job.
  const ledger = standin.complianceLedger();
  expect(new Set(ledger.map((d) => d.id))).toEqual(new Set(expected.keys()));
  expect(new Set(ledger.map((d) => d.jobId))).toEqual(
    new Set(deleteRun.jobs.filter((j) => (j.events ?? 0) > 0).map((j) => j.jobId)),
  );

  const remaining = (await query<{ id: string }>('SELECT id FROM DS.posts')).map((r) => r.id).sort();
  expect(remaining).toEqual([...ids, foreign].filter((id) => !expected.has(id)).sort());

  const journal = await query<Record<string, unknown>>(
    'SELECT job_id, post_id, action, x_action, x_reason, x_created_at, rows_affected FROM DS.compliance_actions',
  );
  expect(journal).toHaveLength(expected.size);
  const jobOf = new Map(ledger.map((d) => [d.id, d]));
  for (const row of journal) {
    const decided = jobOf.get(String(row.post_id))!;
    expect(row).toMatchObject({
      job_id: decided.jobId,
      action: 'deleted',
      x_action: 'delete',
      x_reason: decided.reason,
    });
    expect(Number(row.rows_affected)).toBe(1);
    expect(new Date((row.x_created_at as { value: string }).value).toISOString()).toBe(decided.redacted_at);
  }

  // The same jobs again: nothing journaled, nothing deleted.
  for (const job of deleteRun.jobs) {
    const again = await wf.executeUpdate(reapplyComplianceJobUpdate, { args: [{ jobId: job.jobId }] });
    expect(again).toMatchObject({ jobId: job.jobId, journaled: 0, rowsAffected: 0, events: job.events });
  }
  expect((await query('SELECT id FROM DS.posts')).length).toBe(remaining.length);
  expect((await query('SELECT post_id FROM DS.compliance_actions')).length).toBe(expected.size);

  // Nothing ingested since: the next run submits no job.
  const next = await wf.executeUpdate(runComplianceNowUpdate);
  expect(next).toMatchObject({ ok: true, since: deleteRun.until, jobs: [], idsChecked: 0 });
  await wf.terminate('test done');
});

test('redact mode keeps the rows and nulls text, raw and author of the posts X reports', async () => {
  expect(deleteRun).toBeDefined();
  const ids = await createPosts(30);
  await ingest(ids);
  const expected = standin.complianceDecide(ids);
  expect(expected.size).toBeGreaterThan(1);

  // Carries on from the delete run's watermark: only the new posts are checked.
  const wf = await startCompliance('redact', deleteRun.until);
  const run = await wf.executeUpdate(runComplianceNowUpdate);
  expect(run).toMatchObject({ ok: true, mode: 'redact', idsChecked: 30, events: expected.size });
  expect(run.rowsAffected).toBe(expected.size);

  const rows = await query<Record<string, unknown>>(
    `SELECT id, text, raw, author_id, author_username, author_name, lang FROM DS.posts WHERE id IN (${ids
      .map((id) => `'${id}'`)
      .join(', ')})`,
  );
  expect(rows).toHaveLength(30);
  for (const row of rows) {
    const id = String(row.id);
    if (expected.has(id)) {
      expect(row).toMatchObject({
        text: null,
        raw: null,
        author_id: null,
        author_username: null,
        author_name: null,
      });
    } else {
      expect(row).toMatchObject({ text: `text of ${id}`, author_id: `a${id}`, author_username: `user${id}` });
    }
    expect(row.lang).toBe('en');
  }
  const journal = await query<{ post_id: string; action: string; rows_affected: unknown }>(
    `SELECT post_id, action, rows_affected FROM DS.compliance_actions WHERE job_id IN (${run.jobs
      .map((j) => `'${j.jobId}'`)
      .join(', ')})`,
  );
  expect(journal.map((r) => r.post_id).sort()).toEqual([...expected.keys()].sort());
  expect(journal.every((r) => r.action === 'redacted' && Number(r.rows_affected) === 1)).toBe(true);

  for (const job of run.jobs) {
    const again = await wf.executeUpdate(reapplyComplianceJobUpdate, { args: [{ jobId: job.jobId }] });
    expect(again).toMatchObject({ journaled: 0, rowsAffected: 0 });
  }
  await wf.terminate('test done');
});

test('the supervisor runs the compliance child and carries the state it reports', async () => {
  const streamName = uniqueName('cmp');
  const supervisor = await client.workflow.start('supervisorWorkflow', {
    taskQueue: config.temporal.streamTaskQueue,
    workflowId: supervisorWorkflowId(streamName),
    args: [
      {
        streamName,
        startPaused: true,
        children: { load: false, quality: false, gapFill: false },
      },
    ],
  });
  const childId = complianceWorkflowId(streamName);
  const status = async () => (await supervisor.query(statusQuery)) as PipelineStatus;
  await eventually(status, (s) => s.children.compliance?.state === 'running', { timeoutMs: 30_000 });
  const run = await client.workflow.getHandle(childId).executeUpdate(runComplianceNowUpdate);
  expect(run.ok).toBe(true);
  const s = await eventually(status, (x) => x.compliance?.runs === 1, { timeoutMs: 30_000 });
  expect(s.compliance).toMatchObject({ watermark: run.until, lastRun: { run: 1, until: run.until } });
  await supervisor.signal(stopSignal);
  await supervisor.result();
  expect((await status()).children.compliance?.state).toBe('stopped');
});
