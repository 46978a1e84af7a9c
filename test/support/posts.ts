/** A complete, valid `Post` record for tests (unit and integration) and benches; override any field. */
import { POST_SCHEMA_VERSION, type Post } from '../../src/domain/post';

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
