/** The posts schema as code: validation, the row mapping, schema evolution and comparison. Offline. */
import {
  POSTS_TABLE,
  breakingChangeAdvice,
  decideSchemaEvolution,
  diffSchema,
  toPostRow,
  validatePost,
} from '../../../src/domain/bigquery-schema';
import { POST_SCHEMA_VERSION, type Post } from '../../../src/domain/post';
import { makePost } from '../../support/posts';

const meta = {
  messageId: 'm1',
  publishTime: '2026-11-25T12:00:02.000Z',
  ingestedAt: '2026-11-25T12:00:03.000Z',
  loadRunId: 'lr_1',
};
const reasonOf = (value: unknown) => {
  const v = validatePost(value);
  return v.ok ? null : { stage: v.stage, reason: v.reason };
};

describe('validatePost', () => {
  test('a valid post passes with no extras', () => {
    const v = validatePost(makePost('1'));
    expect(v).toMatchObject({ ok: true, extras: [], extraValues: {} });
  });

  test.each<[string, (p: Record<string, unknown>) => unknown, RegExp]>([
    ['not an object', () => [1], /not a JSON object/],
    ['schema_version missing', (p) => ({ ...p, schema_version: undefined }), /^schema_version/],
    ['id missing', (p) => ({ ...p, id: undefined }), /^id: expected a numeric string/],
    ['id not numeric', (p) => ({ ...p, id: 'abc' }), /^id:/],
    ['text not a string', (p) => ({ ...p, text: 5 }), /^text:/],
    ['created_at invalid', (p) => ({ ...p, created_at: 'yesterday' }), /^created_at:/],
    ['author missing', (p) => ({ ...p, author: null }), /^author: expected an object/],
    ['author.id invalid', (p) => ({ ...p, author: { id: 'x' } }), /^author\.id:/],
    [
      'author.followers_count not an integer',
      (p) => ({ ...p, author: { id: '1', followers_count: 1.5 } }),
      /^author\.followers_count:/,
    ],
    ['lang not a string', (p) => ({ ...p, lang: 1 }), /^lang:/],
    ['metrics missing', (p) => ({ ...p, metrics: undefined }), /^metrics: expected an object/],
    ['a metric not an integer', (p) => ({ ...p, metrics: { like_count: 0.5 } }), /^metrics\.like_count:/],
    ['hashtags not strings', (p) => ({ ...p, hashtags: [1] }), /^hashtags:/],
    ['mentions missing', (p) => ({ ...p, mentions: undefined }), /^mentions:/],
    ['urls malformed', (p) => ({ ...p, urls: [{ expanded_url: 'x' }] }), /^urls:/],
    [
      'referenced_posts malformed',
      (p) => ({ ...p, referenced_posts: [{ type: 'quoted' }] }),
      /^referenced_posts:/,
    ],
    ['edit_history_ids missing', (p) => ({ ...p, edit_history_ids: undefined }), /^edit_history_ids:/],
    ['possibly_sensitive not a bool', (p) => ({ ...p, possibly_sensitive: 'no' }), /^possibly_sensitive:/],
    ['matching_rules malformed', (p) => ({ ...p, matching_rules: [{ tag: 'x' }] }), /^matching_rules:/],
    ['received_at invalid', (p) => ({ ...p, received_at: 'soon' }), /^received_at:/],
    ['raw not a string', (p) => ({ ...p, raw: {} }), /^raw:/],
  ])('%s → validate stage with the reason', (_name, mutate, reason) => {
    const r = reasonOf(mutate(makePost('1') as unknown as Record<string, unknown>));
    expect(r?.stage).toBe('validate');
    expect(r?.reason).toMatch(reason);
  });

  test('a newer schema_version goes to the schema_version stage with what to do', () => {
    const r = reasonOf({ ...makePost('1'), schema_version: POST_SCHEMA_VERSION + 1 });
    expect(r?.stage).toBe('schema_version');
    expect(r?.reason).toMatch(/newer than this loader.*deploy the loader/);
  });

  test('unknown fields become extras with inferred types and values', () => {
    const post = {
      ...makePost('1'),
      community_id: '77',
      score: 0.5,
      is_promoted: true,
      edited_at: '2026-11-25T13:00:00Z',
      tags: ['a'],
      nothing: null,
      author: { ...makePost('1').author, location: 'Paris' },
      metrics: { ...makePost('1').metrics, view_count: 9 },
    };
    const v = validatePost(post);
    if (!v.ok) throw new Error(v.reason);
    const types = Object.fromEntries(v.extras.map((c) => [c.name, [c.type, c.mode]]));
    expect(types).toEqual({
      community_id: ['STRING', 'NULLABLE'],
      score: ['FLOAT64', 'NULLABLE'],
      is_promoted: ['BOOL', 'NULLABLE'],
      edited_at: ['TIMESTAMP', 'NULLABLE'],
      tags: ['STRING', 'NULLABLE'],
      author_location: ['STRING', 'NULLABLE'],
      metrics_view_count: ['FLOAT64', 'NULLABLE'],
    });
    expect(v.extraValues).toMatchObject({
      tags: '["a"]',
      nothing: null,
      author_location: 'Paris',
      score: 0.5,
    });
  });
});

describe('toPostRow', () => {
  test('maps every column, splitting referenced posts by type', () => {
    const post: Post = makePost('10', {
      text: 'the full note_tweet text, longer than 280 characters',
      referenced_posts: [
        { type: 'replied_to', id: '1' },
        { type: 'quoted', id: '2' },
        { type: 'retweeted', id: '3' },
      ],
      urls: [
        { url: 'https://t.co/a', expanded_url: 'https://Example.com/x', domain: null },
        { url: 'https://t.co/b', expanded_url: null, domain: null },
      ],
      matching_rules: [
        { id: 'r1', tag: 'tesla' },
        { id: 'r2', tag: null },
      ],
    });
    const row = toPostRow(post, meta, { community_id: '77' });
    expect(row).toMatchObject({
      id: '10',
      text: 'the full note_tweet text, longer than 280 characters',
      created_at: post.created_at,
      author_id: '42',
      author_username: 'alice',
      author_verified: false,
      author_followers_count: 10,
      retweet_count: 1,
      reply_count: 2,
      like_count: 3,
      quote_count: 0,
      bookmark_count: null,
      impression_count: 100,
      hashtags: ['tesla'],
      mentions: ['bob'],
      urls: ['https://Example.com/x', 'https://t.co/b'],
      url_domains: ['example.com', 't.co'],
      replied_to_id: '1',
      quoted_id: '2',
      retweeted_id: '3',
      referenced_post_ids: ['1', '2', '3'],
      referenced_post_types: ['replied_to', 'quoted', 'retweeted'],
      edit_history_ids: ['10'],
      matching_rule_ids: ['r1', 'r2'],
      matching_rule_tags: ['tesla', ''],
      message_id: 'm1',
      publish_time: meta.publishTime,
      ingested_at: meta.ingestedAt,
      load_run_id: 'lr_1',
      schema_version: POST_SCHEMA_VERSION,
      community_id: '77',
    });
    for (const c of POSTS_TABLE.columns) expect(row).toHaveProperty(c.name);
  });

  test('no referenced posts → NULL reference columns, empty arrays', () => {
    const row = toPostRow(makePost('11', { referenced_posts: [] }), meta);
    expect(row).toMatchObject({
      replied_to_id: null,
      quoted_id: null,
      retweeted_id: null,
      referenced_post_ids: [],
    });
  });
});

describe('diffSchema / breakingChangeAdvice', () => {
  test('missing columns are added (REQUIRED as NULLABLE); legacy type names match', () => {
    const d = diffSchema(
      'posts',
      [
        { name: 'id', type: 'STRING', mode: 'REQUIRED' },
        { name: 'n', type: 'INT64', mode: 'NULLABLE' },
        { name: 'must', type: 'STRING', mode: 'REQUIRED' },
      ],
      [
        { name: 'id', type: 'STRING', mode: 'REQUIRED' },
        { name: 'N', type: 'INTEGER' },
        { name: 'extra', type: 'STRING' },
      ],
    );
    expect(d).toEqual({ add: [{ name: 'must', type: 'STRING', mode: 'NULLABLE' }], breaking: [] });
  });

  test('a retyped or re-moded column is breaking, and the advice says what to do', () => {
    const d = diffSchema(
      'posts',
      [
        { name: 'like_count', type: 'INT64', mode: 'NULLABLE' },
        { name: 'hashtags', type: 'STRING', mode: 'REPEATED' },
      ],
      [
        { name: 'like_count', type: 'STRING', mode: 'NULLABLE' },
        { name: 'hashtags', type: 'STRING', mode: 'NULLABLE' },
      ],
    );
    expect(d.add).toEqual([]);
    expect(d.breaking).toEqual([
      'posts.like_count: the table has STRING, the code wants INT64',
      'posts.hashtags: the table has mode NULLABLE, the code wants REPEATED',
    ]);
    expect(breakingChangeAdvice('posts')).toMatch(/revert the change, or bump POST_SCHEMA_VERSION/);
    expect(breakingChangeAdvice('posts')).toContain(`posts_v${POST_SCHEMA_VERSION + 1}`);
  });
});

describe('decideSchemaEvolution', () => {
  const col = (name: string, type: 'STRING' | 'INT64' | 'FLOAT64' | 'BOOL' | 'TIMESTAMP') => ({
    name,
    type,
    mode: 'NULLABLE' as const,
  });
  const post = (
    id: string,
    extraValues: Record<string, string | number | boolean | null>,
    extras = [] as ReturnType<typeof col>[],
  ) => ({
    id,
    extras,
    extraValues,
  });

  test('posts without new fields pass as they are and add nothing', () => {
    const d = decideSchemaEvolution([post('1', {})], POSTS_TABLE.columns);
    expect(d).toEqual({ fitting: [post('1', {})], conflicts: [], newColumns: [] });
  });

  test('a new field becomes one new column, typed by the first post that has it', () => {
    const d = decideSchemaEvolution(
      [
        post('1', { score: 0.5 }, [col('score', 'FLOAT64')]),
        post('2', { score: 2 }, [col('score', 'FLOAT64')]),
        post('3', { community_id: '7' }, [col('community_id', 'STRING')]),
      ],
      POSTS_TABLE.columns,
    );
    expect(d.newColumns).toEqual([col('score', 'FLOAT64'), col('community_id', 'STRING')]);
    expect(d.fitting.map((p) => [p.id, p.extraValues])).toEqual([
      ['1', { score: 0.5 }],
      ['2', { score: 2 }],
      ['3', { community_id: '7' }],
    ]);
    expect(d.conflicts).toEqual([]);
  });

  test('a field the table already has goes to that column (matched case-insensitively) and adds nothing', () => {
    const d = decideSchemaEvolution(
      [post('1', { Score: 3 }, [col('Score', 'FLOAT64')])],
      [...POSTS_TABLE.columns, { name: 'score', type: 'FLOAT' }],
    );
    expect(d.newColumns).toEqual([]);
    expect(d.fitting[0]!.extraValues).toEqual({ score: 3 });
  });

  test('a value that does not fit its column is a conflict naming the field and the type', () => {
    const d = decideSchemaEvolution(
      [
        post('1', { score: 'high' }, [col('score', 'STRING')]),
        post('2', { score: 1 }, [col('score', 'FLOAT64')]),
      ],
      [...POSTS_TABLE.columns, { name: 'score', type: 'FLOAT64' }],
    );
    expect(d.conflicts).toEqual([
      {
        post: expect.objectContaining({ id: '1' }),
        reason: expect.stringMatching(/^field score: expected FLOAT64.*\(column type FLOAT64\)$/),
      },
    ]);
    expect(d.fitting.map((p) => p.id)).toEqual(['2']);
  });

  test('a STRING column takes any value as text', () => {
    const d = decideSchemaEvolution(
      [post('1', { community_id: 77 }, [col('community_id', 'FLOAT64')])],
      [...POSTS_TABLE.columns, { name: 'community_id', type: 'STRING' }],
    );
    expect(d.fitting[0]!.extraValues).toEqual({ community_id: '77' });
  });

  test('a field with only nulls so far gets no column and is left out of the row', () => {
    const d = decideSchemaEvolution([post('1', { nothing: null })], POSTS_TABLE.columns);
    expect(d.newColumns).toEqual([]);
    expect(d.fitting[0]!.extraValues).toEqual({});
  });

  test('values of known columns in the extras are ignored', () => {
    const d = decideSchemaEvolution([post('1', { text: 'x' }, [col('text', 'STRING')])], POSTS_TABLE.columns);
    expect(d).toMatchObject({ newColumns: [], conflicts: [] });
    expect(d.fitting[0]!.extraValues).toEqual({});
  });
});
