import { normalizeStreamLine, urlDomain } from '../../../src/domain/normalize';
import { POST_SCHEMA_VERSION } from '../../../src/domain/post';

const AT = '2025-01-01T00:00:01.000Z';
const full = {
  data: {
    id: '1880000000000000001',
    text: 'Long post, truncated… https://t.co/x',
    created_at: '2025-01-01T00:00:00.000Z',
    author_id: '42',
    lang: 'en',
    conversation_id: '1880000000000000000',
    possibly_sensitive: false,
    edit_history_tweet_ids: ['1870000000000000000', '1880000000000000001'],
    referenced_tweets: [{ type: 'replied_to', id: '1880000000000000000' }],
    public_metrics: {
      retweet_count: 1,
      reply_count: 2,
      like_count: 3,
      quote_count: 4,
      bookmark_count: 5,
      impression_count: 6,
    },
    entities: { hashtags: [{ start: 0, end: 3, tag: 'short' }] },
    note_tweet: {
      text: 'Long post, the full text with #Tesla and @elon https://t.co/abc 🚗',
      entities: {
        hashtags: [{ start: 30, end: 36, tag: 'Tesla' }],
        mentions: [{ start: 41, end: 46, username: 'elon', id: '44196397' }],
        urls: [
          {
            start: 47,
            end: 70,
            url: 'https://t.co/abc',
            expanded_url: 'https://User@News.Example.com:8443/a?b=1',
            display_url: 'news.example.com/a',
          },
        ],
      },
    },
  },
  includes: {
    users: [
      { id: '7', username: 'other', name: 'Other' },
      {
        id: '42',
        username: 'alice',
        name: 'Alice 🚀',
        verified: true,
        public_metrics: { followers_count: 1234 },
      },
    ],
  },
  matching_rules: [{ id: '1700000000000000001', tag: 'tesla' }, { id: '1700000000000000002' }],
};

describe('normalizeStreamLine', () => {
  it('builds the full Post from a long post with note_tweet, includes and matching rules', () => {
    const line = JSON.stringify(full);
    const r = normalizeStreamLine(line, AT);
    expect(r.kind).toBe('post');
    if (r.kind !== 'post') return;
    expect(r.post).toEqual({
      schema_version: POST_SCHEMA_VERSION,
      id: '1880000000000000001',
      text: full.data.note_tweet.text,
      created_at: '2025-01-01T00:00:00.000Z',
      author: { id: '42', username: 'alice', name: 'Alice 🚀', verified: true, followers_count: 1234 },
      lang: 'en',
      metrics: {
        retweet_count: 1,
        reply_count: 2,
        like_count: 3,
        quote_count: 4,
        bookmark_count: 5,
        impression_count: 6,
      },
      hashtags: ['Tesla'],
      mentions: ['elon'],
      urls: [
        {
          url: 'https://t.co/abc',
          expanded_url: 'https://User@News.Example.com:8443/a?b=1',
          domain: 'news.example.com',
        },
      ],
      referenced_posts: [{ type: 'replied_to', id: '1880000000000000000' }],
      conversation_id: '1880000000000000000',
      edit_history_ids: ['1870000000000000000', '1880000000000000001'],
      possibly_sensitive: false,
      matching_rules: [
        { id: '1700000000000000001', tag: 'tesla' },
        { id: '1700000000000000002', tag: null },
      ],
      received_at: AT,
      raw: line,
    });
  });

  it('uses text and data.entities when there is no note_tweet; missing optional fields become null/[]', () => {
    const line = JSON.stringify({
      data: {
        id: '5',
        text: 'hola #EV',
        created_at: '2025-01-01T00:00:00Z',
        author_id: '9',
        entities: { hashtags: [{ tag: 'EV' }] },
      },
    });
    const r = normalizeStreamLine(line, AT);
    if (r.kind !== 'post') throw new Error(r.kind);
    expect(r.post.text).toBe('hola #EV');
    expect(r.post.hashtags).toEqual(['EV']);
    expect(r.post.author).toEqual({
      id: '9',
      username: null,
      name: null,
      verified: null,
      followers_count: null,
    });
    expect(r.post.lang).toBeNull();
    expect(r.post.metrics.like_count).toBeNull();
    expect(r.post.urls).toEqual([]);
    expect(r.post.matching_rules).toEqual([]);
    expect(r.post.edit_history_ids).toEqual([]);
  });

  it('keeps 64-bit ids as exact strings', () => {
    const line =
      '{"data":{"id":"9223372036854775807","text":"x","created_at":"t","author_id":"18446744073709551615"}}';
    const r = normalizeStreamLine(line, AT);
    if (r.kind !== 'post') throw new Error(r.kind);
    expect(r.post.id).toBe('9223372036854775807');
    expect(r.post.author.id).toBe('18446744073709551615');
  });

  it('a line with data and errors (partial errors) is still a post', () => {
    const line = JSON.stringify({
      data: { id: '1', text: 'q', created_at: 't', author_id: '2' },
      errors: [{ title: 'Authorization Error', detail: 'quoted post not visible' }],
    });
    expect(normalizeStreamLine(line, AT).kind).toBe('post');
  });

  it.each([
    ['id', { text: 'x', created_at: 't', author_id: '1' }, 'missing data.id'],
    ['text', { id: '1', created_at: 't', author_id: '1' }, 'missing data.text'],
    ['created_at', { id: '1', text: 'x', author_id: '1' }, 'missing data.created_at'],
    ['author_id', { id: '1', text: 'x', created_at: 't' }, 'missing data.author_id'],
    ['numeric id', { id: 1, text: 'x', created_at: 't', author_id: '1' }, 'data.id is not a string'],
  ])('missing or mistyped %s → malformed naming the field', (_name, data, reason) => {
    const line = JSON.stringify({ data });
    expect(normalizeStreamLine(line, AT)).toEqual({
      kind: 'malformed',
      message: { kind: 'malformed', reason, raw: line, received_at: AT },
    });
  });

  it('invalid JSON, non-objects and empty messages are malformed, never dropped', () => {
    for (const [line, reason] of [
      ['{"data":{"id":"1","text":"cut', /^invalid JSON/],
      ['[1,2]', /not a JSON object/],
      ['{}', /no "data"/],
      ['{"data":"x"}', /not an object/],
    ] as const) {
      const r = normalizeStreamLine(line, AT);
      expect(r.kind).toBe('malformed');
      if (r.kind === 'malformed') {
        expect(r.message.reason).toMatch(reason);
        expect(r.message.raw).toBe(line);
      }
    }
  });

  it('recognises operational disconnects and other in-stream errors', () => {
    const disc = JSON.stringify({
      errors: [
        {
          title: 'operational-disconnect',
          disconnect_type: 'UpstreamOperationalDisconnect',
          detail: 'bye',
          type: 'x',
        },
      ],
    });
    expect(normalizeStreamLine(disc, AT)).toEqual({
      kind: 'disconnect',
      disconnectType: 'UpstreamOperationalDisconnect',
      detail: 'bye',
      raw: disc,
    });
    const err = JSON.stringify({
      errors: [{ title: 'ConnectionException', connection_issue: 'RulesInvalidIssue' }],
    });
    expect(normalizeStreamLine(err, AT)).toMatchObject({
      kind: 'error',
      errors: [{ title: 'ConnectionException' }],
    });
  });

  it('urlDomain extracts the host without the URL global', () => {
    expect(urlDomain('https://www.Example.co.jp/path?q#f')).toBe('www.example.co.jp');
    expect(urlDomain('http://u:p@host:8080')).toBe('host');
    expect(urlDomain('http://[::1]:80/')).toBe('[::1]');
    expect(urlDomain('not a url')).toBeNull();
    expect(urlDomain(null)).toBeNull();
  });
});
