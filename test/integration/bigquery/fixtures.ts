/** Shared helpers of the BigQuery load integration tests: a private dataset/topic/subscription per file. */
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import type { Post } from '../../../src/domain/post';
import { testConfig, uniqueName } from '../../support/config';

export function privateConfig(prefix: string) {
  const n = uniqueName(prefix);
  return testConfig({
    BIGQUERY_DATASET: n,
    PUBSUB_TOPIC: `${n}_topic`,
    PUBSUB_SUBSCRIPTION: `${n}_sub`,
    PUBSUB_DEAD_LETTER_TOPIC: `${n}_dlq`,
  });
}

export { makePost } from '../../support/posts';

export interface OutMessage {
  data: string | Buffer;
  attributes?: Record<string, string>;
}

export const postMessage = (p: Post | Record<string, unknown>): OutMessage => ({
  data: JSON.stringify(p),
  attributes: {
    post_id: String((p as { id?: unknown }).id ?? ''),
    malformed: 'false',
    schema_version: '1',
    rule_tags: 'tesla',
  },
});

export async function publishAll(pubsub: PubSub, topic: string, messages: OutMessage[]): Promise<string[]> {
  const t = pubsub.topic(topic, { batching: { maxMessages: 1000, maxMilliseconds: 10 } });
  const ids = await Promise.all(
    messages.map((m) =>
      t.publishMessage({
        data: Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data),
        attributes: m.attributes,
      }),
    ),
  );
  await t.flush();
  return ids;
}

/**
 * A query runner for a test's private dataset: `DS.<table>` in the SQL names that table of
 * `gcp.dataset` (the tests use the default table ids).
 */
export function datasetQuery(bq: () => BigQuery, gcp: () => { projectId: string; dataset: string }) {
  return async <T = Record<string, unknown>>(sql: string): Promise<T[]> => {
    const { projectId, dataset } = gcp();
    const [rows] = await bq().query({
      query: sql.replace(/\bDS\.(\w+)/g, (_m, t: string) => `\`${projectId}.${dataset}.${t}\``),
    });
    return rows as T[];
  };
}
