/**
 * The quality child workflow on the real Temporal dev server with a real worker and the BigQuery
 * emulator: a run on demand (the `runChecksNow` update) writes one `dq_results` row per check,
 * returns the verdict, signals it to the parent, and sets the `DataQuality` search attribute.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { createQualityActivities } from '../../../src/activities/quality';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureDataset } from '../../../src/adapters/bigquery/provision';
import { createBigQueryQualityStore } from '../../../src/adapters/bigquery/quality-queries';
import { createStreamCounters } from '../../../src/adapters/temporal/published-counts';
import type { PipelineStatus } from '../../../src/domain/pipeline-status';
import { runChecksUpdate } from '../../../src/workflows/messages';
import { testConfig, uniqueName } from '../../support/config';
import { cleanFixture, countersOf, writeFixture } from './fixtures';

const dataset = uniqueName('dq_wf');
const config = testConfig({ BIGQUERY_DATASET: dataset });

test('a run on demand writes results, returns the verdict and signals the parent', async () => {
  const bq = createBigQueryClient(config.gcp);
  await ensureDataset(bq, config.gcp);
  // A null text: the run must report completeness=fail everywhere.
  const asOfGuess = new Date().toISOString();
  const fixture = cleanFixture(asOfGuess);
  fixture.posts[3] = { ...fixture.posts[3]!, text: null };
  const tables = await writeFixture(bq, config.gcp, 'wf', fixture);
  const gcp = { ...config.gcp, tables: { ...config.gcp.tables, ...tables } };
  const logger = pino({ level: 'silent' });
  const status = { publishedByMinute: countersOf(fixture), progress: { connected: true } } as PipelineStatus;
  const counters = createStreamCounters(async () => status);
  const activities = createQualityActivities({
    store: createBigQueryQualityStore({ bq, gcp, logger }),
    logger,
    publishedCounts: counters.publishedCounts,
    streamConnected: counters.streamConnected,
    checks: { volume: { minBaseline: 5 } },
  });

  const taskQueue = uniqueName('dq');
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities,
  });
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const parentId = uniqueName('parent');
  const qualityId = uniqueName('quality');

  await worker.runUntil(async () => {
    const parent = await client.workflow.start('fakeParentWorkflow', { taskQueue, workflowId: parentId });
    const quality = await client.workflow.start('qualityWorkflow', {
      taskQueue,
      workflowId: qualityId,
      args: [{ intervalMs: 3_600_000, parentWorkflowId: parentId, runOnStart: false }],
    });
    const verdict = await quality.executeUpdate(runChecksUpdate);
    expect(verdict.status).toBe('fail');
    expect(verdict.runId).toBe(`${qualityId}:${quality.firstExecutionRunId}:1`);
    expect(verdict.problems).toEqual([
      {
        check: 'completeness',
        status: 'fail',
        details: expect.stringMatching(/null or empty text: 1 of \d+ rows/),
      },
    ]);

    // The parent received the same verdict.
    const received = await parent.result();
    expect(received).toEqual([verdict]);

    // One row per check, under the run id.
    const [rows] = await bq.query({
      query: `SELECT \`check\`, status FROM \`${gcp.projectId}.${dataset}.${gcp.tables.dqResults}\`
              WHERE checked_at >= @from AND run_id = @run ORDER BY \`check\``,
      params: { from: bq.timestamp(new Date(Date.now() - 3_600_000).toISOString()), run: verdict.runId },
    });
    expect(rows).toHaveLength(8);
    expect(rows.find((r: { check: string }) => r.check === 'completeness')).toEqual({
      check: 'completeness',
      status: 'fail',
    });

    // The verdict is visible in the Web UI as a search attribute.
    const desc = await quality.describe();
    expect(desc.searchAttributes.DataQuality).toEqual(['fail']);

    await quality.terminate('test done');
  });
  await connection.close();
});
