/**
 * The quality child repairs duplicates it finds (issue #13), on the real Temporal dev server with a
 * real worker and the BigQuery emulator: a run whose uniqueness check fails runs the repair, the
 * verdict says what was removed, `load_repairs` records it, and the next run finds `posts` clean.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import pino from 'pino';
import { createQualityActivities } from '../../../src/activities/quality';
import { createBigQueryClient } from '../../../src/adapters/bigquery/client';
import { ensureTables } from '../../../src/adapters/bigquery/provision';
import { createBigQueryQualityStore } from '../../../src/adapters/bigquery/quality-queries';
import { repairDuplicates } from '../../../src/adapters/bigquery/repair';
import { CHECK_NAMES, type QualityChecksOverrides } from '../../../src/domain/quality';
import { runChecksUpdate } from '../../../src/workflows/messages';
import { testConfig, uniqueName } from '../../support/config';

jest.setTimeout(120_000);

const config = testConfig({ BIGQUERY_DATASET: uniqueName('dq_repair') });
/** Only the uniqueness check: the others need fixtures this test is not about. */
const checks = Object.fromEntries(
  CHECK_NAMES.map((name) => [name, { enabled: name === 'uniqueness' }]),
) as QualityChecksOverrides;

test('a run that finds duplicate ids repairs them and reports the repair in its verdict', async () => {
  const bq = createBigQueryClient(config.gcp);
  await ensureTables(bq, config.gcp);
  const posts = `\`${config.gcp.projectId}.${config.gcp.dataset}.${config.gcp.tables.posts}\``;
  const repairs = `\`${config.gcp.projectId}.${config.gcp.dataset}.${config.gcp.tables.loadRepairs}\``;
  const created = new Date(Date.now() - 3_600_000).toISOString();
  const ingested = (s: number) => new Date(Date.now() - 3_000_000 + s * 1000).toISOString();
  const [inject] = await bq.createQueryJob({
    query: `INSERT INTO ${posts} (id, text, created_at, load_run_id, message_id, ingested_at) VALUES
      ('4001', 'a', TIMESTAMP '${created}', 'run_1', 'm1', TIMESTAMP '${ingested(0)}'),
      ('4001', 'a', TIMESTAMP '${created}', 'run_2', 'm2', TIMESTAMP '${ingested(5)}'),
      ('4002', 'b', TIMESTAMP '${created}', 'run_1', 'm3', TIMESTAMP '${ingested(0)}')`,
    jobId: uniqueName('inject'),
  });
  await inject.getQueryResults();

  const logger = pino({ level: 'silent' });
  const activities = createQualityActivities({
    store: createBigQueryQualityStore({ bq, gcp: config.gcp, logger }),
    logger,
    publishedCounts: async () => undefined,
    repair: (opts) => repairDuplicates(bq, config.gcp, opts, logger),
  });
  const taskQueue = uniqueName('dq_repair');
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities,
  });
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });

  await worker.runUntil(async () => {
    const quality = await client.workflow.start('qualityWorkflow', {
      taskQueue,
      workflowId: uniqueName('quality'),
      args: [{ intervalMs: 3_600_000, runOnStart: false, checks }],
    });
    const verdict = await quality.executeUpdate(runChecksUpdate);
    expect(verdict.status).toBe('fail');
    expect(verdict.problems).toEqual([
      { check: 'uniqueness', status: 'fail', details: expect.stringContaining('4001 ×2') },
      {
        check: 'uniqueness_repair',
        status: 'warn',
        details: expect.stringMatching(
          new RegExp(
            `^removed 1 duplicate row\\(s\\) of 1 id\\(s\\) .*under ${verdict.runId} \\(e\\.g\\. 4001 \\(run run_2\\)\\)$`,
          ),
        ),
      },
    ]);

    const [kept] = await bq.query(`SELECT id, load_run_id FROM ${posts} ORDER BY id`);
    expect(kept).toEqual([
      { id: '4001', load_run_id: 'run_1' },
      { id: '4002', load_run_id: 'run_1' },
    ]);
    const [recorded] = await bq.query(
      `SELECT post_id, removed_load_run_id, kept_load_run_id, repair_id FROM ${repairs}`,
    );
    expect(recorded).toEqual([
      { post_id: '4001', removed_load_run_id: 'run_2', kept_load_run_id: 'run_1', repair_id: verdict.runId },
    ]);

    // The next run finds one row per id: no repair, a clean verdict.
    const next = await quality.executeUpdate(runChecksUpdate);
    expect(next).toMatchObject({ status: 'ok', problems: [] });
    await quality.terminate('test done');
  });
  await connection.close();
  await bq
    .dataset(config.gcp.dataset)
    .delete({ force: true })
    .catch(() => undefined);
});
