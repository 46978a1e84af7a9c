/** Shared helpers of the BigQuery load integration tests: a private dataset/topic/subscription per file. */
import type { PubSub } from '@google-cloud/pubsub';
import { POST_SCHEMA_VERSION, type Post } from '../../../src/domain/post';
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

export function makePost(id: string, overrides: Partial<Post> & Record<string, unknown> = {}): Post {
  return {
    schema_version: POST_SCHEMA_VERSION,
    id,
    text: `post ${id} #tesla`,
    created_at: '2026-11-25T12:00:00.000Z',
    author: { id: '42', username: 'alice', name: 'Alice', verified: false, followers_count: 10 },
    lang: 'en',
    metrics: {
      retweet_count: 1,
      reply_count: 2,
      like_count: 3,
      quote_count: 0,
      bookmark_count: null,
      impression_count: 100,
    },
    hashtags: ['tesla'],
    mentions: ['bob'],
    urls: [{ url: 'https://t.co/x', expanded_url: 'https://example.com/a', domain: 'example.com' }],
    referenced_posts: [{ type: 'quoted', id: '7' }],
    conversation_id: id,
    edit_history_ids: [id],
    possibly_sensitive: false,
    matching_rules: [{ id: '1', tag: 'tesla' }],
    received_at: '2026-11-25T12:00:01.000Z',
    raw: JSON.stringify({ data: { id } }),
    ...overrides,
  } as Post;
}

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
