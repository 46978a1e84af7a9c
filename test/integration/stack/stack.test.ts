/**
 * Proves each part of the local stack is real: a workflow runs on the Temporal server through a
 * worker, a message published to the Pub/Sub emulator is pulled back, a row inserted into the
 * BigQuery emulator is queried back.
 */
import { BigQuery } from '@google-cloud/bigquery';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { OAuth2Client } from 'google-auth-library';
import { createPubSub } from '../../../src/adapters/pubsub/client';
import { SEARCH_ATTRIBUTES, ensureSearchAttributes } from '../../../dev/stack/manager';
import { testConfig, uniqueName } from '../../support/config';
import { eventually } from '../../support/eventually';

const config = testConfig();

test('a workflow runs on the Temporal dev server through a real worker', async () => {
  const connection = await Connection.connect({ address: config.temporal.address });
  const taskQueue = uniqueName('stack');
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
    taskQueue,
    workflowsPath: require.resolve('./echo-workflow'),
  });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const result = await worker.runUntil(
    client.workflow.execute('echo', { taskQueue, workflowId: uniqueName('echo'), args: ['ping'] }),
  );
  expect(result).toBe('echo: ping');
  await connection.close();
});

test('a message published to the Pub/Sub emulator is pulled back', async () => {
  const pubsub = createPubSub(config.gcp);
  const [topic] = await pubsub.createTopic(uniqueName('t'));
  const [sub] = await topic.createSubscription(uniqueName('s'));
  const id = await topic.publishMessage({ data: Buffer.from('hello'), attributes: { k: 'v' } });
  const received = await new Promise<{ id: string; data: string; attrs: Record<string, string> }>(
    (resolve) => {
      sub.on('message', (m) => {
        m.ack();
        resolve({ id: m.id, data: m.data.toString(), attrs: m.attributes });
      });
    },
  );
  expect(received).toEqual({ id, data: 'hello', attrs: { k: 'v' } });
  await sub.close();
  await sub.delete();
  await topic.delete();
  await pubsub.close();
});

test('a row inserted into the BigQuery emulator is queried back', async () => {
  // The emulator needs no credentials; a fixed token keeps google-auth from looking for any.
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: 'emulator', expiry_date: Date.now() + 3_600_000 });
  const bq = new BigQuery({
    projectId: config.gcp.projectId,
    apiEndpoint: config.gcp.bigqueryEmulatorHost,
    authClient,
  });
  const [dataset] = await bq.createDataset(uniqueName('ds'));
  const [table] = await dataset.createTable('t', {
    schema: [
      { name: 'id', type: 'STRING' },
      { name: 'n', type: 'INT64' },
    ],
  });
  await table.insert([{ id: 'a', n: 7 }]);
  const [rows] = await bq.query({
    query: `SELECT id, n FROM \`${config.gcp.projectId}.${dataset.id}.t\` WHERE id = @id`,
    params: { id: 'a' },
  });
  expect(rows).toEqual([{ id: 'a', n: 7 }]);
  await dataset.delete({ force: true });
});

test('search attributes missing on a server we did not start are registered, once', async () => {
  // A namespace without them stands for a server started without our --search-attribute flags.
  const connection = await Connection.connect({ address: config.temporal.address });
  const namespace = uniqueName('ns');
  await connection.workflowService.registerNamespace({
    namespace,
    // protobufjs takes a number where the generated type says Long.
    workflowExecutionRetentionPeriod: { seconds: 86_400 as never },
  });
  const added = await eventually(
    () => ensureSearchAttributes(config.temporal.address, namespace),
    (names) => names.length > 0,
    { timeoutMs: 30_000, intervalMs: 500 },
  );
  expect(added.sort()).toEqual(Object.keys(SEARCH_ATTRIBUTES).sort());
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  for (const name of Object.keys(SEARCH_ATTRIBUTES)) expect(customAttributes).toHaveProperty(name);
  expect(await ensureSearchAttributes(config.temporal.address, namespace)).toEqual([]);
  await connection.close();
});
