/** Rule sync with `twitter-api-v2` (base URL rewritten) against the real stand-in over loopback. */
import { startXStandin, type XStandin } from '../../../dev/x-api-standin/server';
import { XAuthError, XRuleError } from '../../../src/adapters/x/errors';
import { XRulesClient } from '../../../src/adapters/x/rules-client';
import { createLogger } from '../../../src/observability/logger';

const TOKEN = 'rules-test-token';
const logger = createLogger({ level: 'silent' });
let standin: XStandin;
let client: XRulesClient;

beforeEach(async () => {
  standin = await startXStandin({ rate: 0 });
  client = new XRulesClient({ baseUrl: standin.url, bearerToken: TOKEN, logger });
});
afterEach(async () => {
  await standin.close();
});

const simple = (rules: { value: string; tag?: string }[]) =>
  rules.map((r) => ({ value: r.value, tag: r.tag })).sort((a, b) => a.value.localeCompare(b.value));

describe('XRulesClient', () => {
  it('adds the missing rules to an empty set', async () => {
    const res = await client.sync([{ value: 'tesla', tag: 'tesla' }, { value: '"model 3" lang:en' }]);
    expect(simple(res.added)).toEqual([
      { value: '"model 3" lang:en', tag: undefined },
      { value: 'tesla', tag: 'tesla' },
    ]);
    expect(res.deleted).toEqual([]);
    expect(simple(res.applied)).toEqual(simple(standin.rules()));
    for (const r of res.added) expect(r.id).toMatch(/^\d+$/);
  });

  it('deletes extra rules, keeps unchanged ones (same id) and re-tags by delete + add', async () => {
    const first = await client.sync([
      { value: 'tesla', tag: 'tesla' },
      { value: 'spacex', tag: 'space' },
      { value: 'ev', tag: 'old' },
    ]);
    const teslaId = first.applied.find((r) => r.value === 'tesla')!.id;
    const res = await client.sync([
      { value: 'tesla', tag: 'tesla' },
      { value: 'ev', tag: 'new' },
    ]);
    expect(simple(res.deleted)).toEqual([
      { value: 'ev', tag: 'old' },
      { value: 'spacex', tag: 'space' },
    ]);
    expect(simple(res.added)).toEqual([{ value: 'ev', tag: 'new' }]);
    expect(simple(standin.rules())).toEqual([
      { value: 'ev', tag: 'new' },
      { value: 'tesla', tag: 'tesla' },
    ]);
    expect(standin.rules().find((r) => r.value === 'tesla')!.id).toBe(teslaId);
    // in sync now: nothing to do
    expect(
      await client.sync([
        { value: 'tesla', tag: 'tesla' },
        { value: 'ev', tag: 'new' },
      ]),
    ).toMatchObject({
      added: [],
      deleted: [],
    });
  });

  it('an invalid rule is reported with X’s reason and nothing is applied', async () => {
    await client.sync([{ value: 'tesla', tag: 'tesla' }]);
    const before = standin.rules();
    const err = await client
      .sync([
        { value: 'ev', tag: 'ev' },
        { value: '(tesla OR spacex', tag: 'bad' },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(XRuleError);
    expect((err as XRuleError).problems).toEqual([
      {
        value: '(tesla OR spacex',
        tag: 'bad',
        title: 'Invalid Rule',
        reason: "Unbalanced parentheses: missing ')'",
      },
    ]);
    expect((err as Error).message).toContain('(tesla OR spacex');
    expect(standin.rules()).toEqual(before); // neither the valid add nor the delete of 'tesla' happened
  });

  it('validate(): invalid rules throw with every reason; existing (duplicate) rules are valid', async () => {
    await client.sync([{ value: 'tesla', tag: 'tesla' }]);
    await expect(client.validate([{ value: 'tesla' }, { value: 'ev' }])).resolves.toBeUndefined();
    const err = (await client
      .validate([{ value: '"unclosed' }, { value: '-only' }])
      .catch((e: unknown) => e)) as XRuleError;
    expect(err).toBeInstanceOf(XRuleError);
    expect(err.problems.map((p) => p.reason)).toEqual([
      expect.stringMatching(/quote/),
      expect.stringMatching(/non-negation/),
    ]);
    expect(standin.rules()).toHaveLength(1); // dry run only
  });

  it('X’s DuplicateRule for a rule added concurrently by someone else fails the sync cleanly', async () => {
    // Another client adds "ev" (no tag) after our list: our add of "ev#ev" is a DuplicateRule.
    const other = new XRulesClient({ baseUrl: standin.url, bearerToken: TOKEN });
    await other.sync([{ value: 'ev' }]);
    const spy = jest.spyOn(client, 'list').mockResolvedValueOnce([]);
    const err = await client.sync([{ value: 'ev', tag: 'ev' }]).catch((e: unknown) => e);
    spy.mockRestore();
    expect(err).toBeInstanceOf(XRuleError);
    expect((err as XRuleError).problems[0]).toMatchObject({ value: 'ev', title: 'DuplicateRule' });
    expect(simple(standin.rules())).toEqual([{ value: 'ev', tag: undefined }]);
  });

  it('lists every page (more than 1000 rules)', async () => {
    const many = Array.from({ length: 1203 }, (_, i) => ({ value: `kw${i}`, tag: `t${i % 7}` }));
    await client.sync(many);
    const listed = await client.list();
    expect(listed).toHaveLength(1203);
    expect(new Set(listed.map((r) => r.id)).size).toBe(1203);
  });

  it('a refused token gives XAuthError without the token', async () => {
    const guarded = await startXStandin({ rate: 0, token: 'the-right-token' });
    try {
      const bad = new XRulesClient({ baseUrl: guarded.url, bearerToken: 'wrong-secret-token' });
      const err = await bad.list().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(XAuthError);
      expect((err as Error).message).toMatch(/X_BEARER_TOKEN/);
      expect(`${(err as Error).message} ${(err as Error).stack} ${JSON.stringify(err)}`).not.toContain(
        'wrong-secret-token',
      );
    } finally {
      await guarded.close();
    }
  });
});
