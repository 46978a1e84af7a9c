import { Corpus, snowflake } from '../../../../dev/x-api-standin/corpus';
import {
  compileRule,
  RuleSyntaxError,
  streamOnlyOperator,
  type MatchablePost,
} from '../../../../dev/x-api-standin/rule-engine';
import { normalizeStreamLine } from '../../../../src/domain/normalize';

const post = (over: Partial<MatchablePost>): MatchablePost => ({
  textLower: '',
  hashtags: [],
  mentions: [],
  lang: 'en',
  username: 'u',
  isRetweet: false,
  isReply: false,
  isQuote: false,
  hasLinks: false,
  ...over,
});

describe('stand-in rule engine', () => {
  it.each([
    ['', /empty/],
    ['   ', /empty/],
    ['(tesla', /parenthes/],
    ['tesla)', /parenthes/],
    ['"tesla', /quote/],
    ['tesla OR', /OR/],
    ['-tesla', /non-negation/],
    ['x'.repeat(1025), /1024/],
    ['tesla sample:0', /sample/],
    ['tesla sample:ten', /sample/],
  ])('rejects %j', (value, reason) => {
    expect(() => compileRule(value)).toThrow(RuleSyntaxError);
    expect(() => compileRule(value)).toThrow(reason);
  });

  it('matches keywords, phrases, OR, negation, hashtags and operators', () => {
    expect(compileRule('tesla').match(post({ textLower: 'my tesla!' }))).toBe(true);
    expect(compileRule('tesla').match(post({ textLower: 'teslas' }))).toBe(false);
    expect(compileRule('"model 3"').match(post({ textLower: 'the model 3 is' }))).toBe(true);
    expect(compileRule('tesla -stock').match(post({ textLower: 'tesla stock' }))).toBe(false);
    expect(compileRule('(ev OR 전기차) lang:ko').match(post({ textLower: '전기차 좋아', lang: 'ko' }))).toBe(
      true,
    );
    expect(compileRule('#EV').match(post({ hashtags: ['ev'] }))).toBe(true);
    expect(compileRule('tesla is:retweet').match(post({ textLower: 'tesla', isRetweet: false }))).toBe(false);
  });
});

describe('sample: and the stream-only operators', () => {
  it('sample:N matches every post and seeds nothing, so `tesla sample:10` makes posts about tesla', () => {
    const r = compileRule('tesla sample:10');
    expect(r.seeds).toEqual(['tesla']);
    expect(r.match(post({ textLower: 'my tesla' }))).toBe(true);
    expect(r.match(post({ textLower: 'my bike' }))).toBe(false);
    expect(compileRule('sample:100').match(post({}))).toBe(true);
  });

  it('finds the first stream-only operator outside quotes, with its 1-based position', () => {
    expect(streamOnlyOperator('tesla sample:10')).toEqual({ op: 'sample', position: 7 });
    expect(streamOnlyOperator('(ev OR -followers_count:10)')).toEqual({ op: 'followers_count', position: 9 });
    expect(streamOnlyOperator('LISTED_COUNT:3 tesla')).toEqual({ op: 'listed_count', position: 1 });
    expect(streamOnlyOperator('"sample:10" tesla')).toBeUndefined();
    expect(streamOnlyOperator('resample:10 lang:en')).toBeUndefined();
  });
});

describe('stand-in corpus', () => {
  const rule = compileRule('tesla');
  const rules = [{ id: '99', tag: 'tesla', seeds: rule.seeds, match: rule.match }];

  it('ids are unique decimal snowflakes, stable per seed', () => {
    const a = new Corpus(7);
    const b = new Corpus(7);
    const idsA = Array.from({ length: 500 }, () => a.next(rules, 0)?.id);
    const idsB = Array.from({ length: 500 }, () => b.next(rules, 0)?.id);
    expect(idsA).toEqual(idsB);
    expect(new Set(idsA).size).toBe(500);
    for (const id of idsA) expect(id).toMatch(/^[1-9]\d{17,19}$/);
    expect(snowflake(1, 5)).not.toBe(snowflake(2, 5));
  });

  it('generates realistic posts that normalise and match the rule they were made for', () => {
    const c = new Corpus(3);
    const langs = new Set<string>();
    let long = 0;
    let refs = 0;
    let edits = 0;
    for (let i = 0; i < 400; i++) {
      const p = c.next(rules, Date.now())!;
      const n = normalizeStreamLine(p.line, new Date().toISOString());
      if (n.kind !== 'post') throw new Error(`not a post: ${p.line}`);
      expect(n.post.id).toBe(p.id);
      expect(n.post.matching_rules).toEqual([{ id: '99', tag: 'tesla' }]);
      expect(n.post.text.toLowerCase()).toContain('tesla');
      expect(n.post.author.username).not.toBeNull();
      langs.add(n.post.lang!);
      if (JSON.parse(p.line).data.note_tweet) long++;
      if (n.post.referenced_posts.length) refs++;
      if (n.post.edit_history_ids.length > 1) edits++;
    }
    expect([...langs].sort()).toEqual(['de', 'en', 'es', 'ja', 'ko']);
    expect(long).toBeGreaterThan(0);
    expect(refs).toBeGreaterThan(0);
    expect(edits).toBeGreaterThan(0);
  });
});

describe('post ids in virtual time', () => {
  it('keeps the posts of a seed but gives a later run ids no earlier run used', () => {
    const rule = compileRule('tesla');
    const rules = [{ id: '99', tag: 'tesla', seeds: rule.seeds, match: rule.match }];
    const take = (c: Corpus, n: number) => Array.from({ length: n }, () => c.next(rules, 0)!);
    const first = take(new Corpus(42, Date.UTC(2026, 11, 2, 14, 0)), 5000);
    const again = take(new Corpus(42, Date.UTC(2026, 11, 2, 14, 1)), 5000);
    // The same text, but for the t.co links, which are made from the id.
    const text = (p: { line: string }) =>
      (JSON.parse(p.line) as { data: { text: string } }).data.text.replace(/https:\/\/t\.co\/\d+/g, 'link');
    expect(again.map(text)).toEqual(first.map(text));
    const ids = new Set(first.map((p) => p.id));
    expect(again.filter((p) => ids.has(p.id))).toEqual([]);
    // Later runs sort after earlier ones, like X's snowflakes.
    expect(BigInt(again[0]!.id) > BigInt(first[first.length - 1]!.id)).toBe(true);
  });
});
