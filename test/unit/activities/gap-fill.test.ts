/**
 * The gap-fill activity's helpers: the cursor a retried attempt resumes from, the rule ids found
 * posts carry, and the sleep that ends when the fill is stopped. The activity itself is tested
 * against the X stand-in and the Pub/Sub emulator (test/integration/gapfill).
 */
import { abortableSleep, resolveRuleIds, resumeCursor } from '../../../src/activities/gap-fill';

describe('resumeCursor', () => {
  const cursor = {
    ruleIndex: 1,
    nextToken: 'abc',
    postsFound: 200,
    postsPublished: 200,
    unsearchable: [{ rule: 'x sample:10', reason: 'stream only' }],
  };

  test('a heartbeated cursor is resumed as it is', () => {
    expect(resumeCursor(cursor, 2)).toEqual(cursor);
    expect(resumeCursor({ ...cursor, ruleIndex: 2, nextToken: undefined }, 2)).toEqual({
      ruleIndex: 2,
      postsFound: 200,
      postsPublished: 200,
      unsearchable: cursor.unsearchable,
    });
  });

  test('no details, or details that are not a cursor for these rules, start over', () => {
    expect(resumeCursor(undefined, 2)).toBeUndefined();
    expect(resumeCursor('page 3', 2)).toBeUndefined();
    expect(resumeCursor({ ...cursor, ruleIndex: 3 }, 2)).toBeUndefined();
    expect(resumeCursor({ ...cursor, postsFound: -1 }, 2)).toBeUndefined();
    expect(resumeCursor({ ...cursor, unsearchable: undefined }, 2)).toBeUndefined();
    expect(resumeCursor({ ...cursor, nextToken: 7 }, 2)).toBeUndefined();
  });
});

describe('resolveRuleIds', () => {
  const active = [
    { id: '100', value: 'tesla', tag: 'tesla' },
    { id: '101', value: '#ev lang:en' },
  ];

  test('rules without an id get the id of the active rule with the same value', async () => {
    const list = jest.fn(async () => active);
    const rules = await resolveRuleIds(
      [{ value: 'tesla', tag: 'tesla' }, { value: '#ev lang:en' }, { id: '7', value: 'kept' }],
      { list },
    );
    expect(rules).toEqual([
      { id: '100', value: 'tesla', tag: 'tesla' },
      { id: '101', value: '#ev lang:en' },
      { id: '7', value: 'kept' },
    ]);
    expect(list).toHaveBeenCalledTimes(1);
  });

  test('X is not asked when every rule has its id', async () => {
    const list = jest.fn(async () => active);
    expect(await resolveRuleIds([{ id: '9', value: 'a', tag: 't' }], { list })).toEqual([
      { id: '9', value: 'a', tag: 't' },
    ]);
    expect(list).not.toHaveBeenCalled();
  });

  test('a rule not active on X is still searched, with the id "" and its tag', async () => {
    expect(await resolveRuleIds([{ value: 'gone', tag: 'old' }], { list: async () => active })).toEqual([
      { id: '', value: 'gone', tag: 'old' },
    ]);
    expect(await resolveRuleIds([{ value: 'gone' }], undefined)).toEqual([{ id: '', value: 'gone' }]);
  });
});

describe('abortableSleep', () => {
  test('resolves at once when the signal aborts, and when it was already aborted', async () => {
    const stop = new AbortController();
    const t = Date.now();
    const sleeping = abortableSleep(60_000, stop.signal);
    stop.abort();
    await sleeping;
    await abortableSleep(60_000, stop.signal);
    expect(Date.now() - t).toBeLessThan(1000);
  });

  test('resolves after the time without a signal', async () => {
    const t = Date.now();
    await abortableSleep(20);
    expect(Date.now() - t).toBeGreaterThanOrEqual(15);
  });
});
