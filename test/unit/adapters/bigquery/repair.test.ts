/** The repair's pure parts: which copy is kept, what cannot be removed, the SQL and the job ids. */
import {
  compareCopies,
  isConcurrentUpdate,
  isIsoDate,
  planRepair,
  repairJobBase,
  repairRows,
  repairSql,
  rowKey,
  type PostCopy,
} from '../../../../src/adapters/bigquery/repair';
import { parseRepairArgs } from '../../../../src/workers/repair-duplicates';

const copy = (id: string, run: string | null, ingested: string | null, message = `m_${run}`): PostCopy => ({
  id,
  load_run_id: run,
  message_id: message,
  ingested_at: ingested,
});
const T1 = '2026-03-01T10:00:00.000Z';
const T2 = '2026-03-01T10:00:05.000Z';

describe('planRepair', () => {
  test('keeps the earliest ingested copy of each id and removes the others', () => {
    const plan = planRepair([copy('9', 'run_b', T2), copy('9', 'run_a', T1), copy('8', 'x', T1)]);
    expect(plan.unrepairable).toEqual([]);
    expect(plan.removed).toEqual([
      {
        postId: '9',
        removedLoadRunId: 'run_b',
        removedMessageId: 'm_run_b',
        removedIngestedAt: T2,
        keptLoadRunId: 'run_a',
      },
    ]);
  });

  test('equal ingested_at: the smallest load_run_id is kept; a NULL ingested_at sorts last', () => {
    const plan = planRepair([copy('1', 'run_z', T1), copy('1', 'run_y', T1), copy('1', 'run_a', null)]);
    expect(plan.removed.map((r) => [r.removedLoadRunId, r.keptLoadRunId])).toEqual([
      ['run_z', 'run_y'],
      ['run_a', 'run_y'],
    ]);
  });

  test('is independent of the order the rows were read in', () => {
    const rows = [copy('5', 'c', T2), copy('4', 'b', T1), copy('5', 'a', T1), copy('4', 'a', T2)];
    const expected = planRepair(rows);
    expect(planRepair([...rows].reverse())).toEqual(expected);
    expect(expected.removed.map((r) => [r.postId, r.removedLoadRunId])).toEqual([
      ['4', 'a'],
      ['5', 'c'],
    ]);
  });

  test('copies that share a load_run_id, or have none, are unrepairable, not removed', () => {
    const plan = planRepair([
      copy('1', 'r', T1),
      copy('1', 'r', T1), // the twin of the kept row: deleting it would delete both
      copy('1', 's', T2), // still removable
      copy('2', 'k', T1),
      copy('2', null, T2),
    ]);
    expect(plan.removed.map((r) => [r.postId, r.removedLoadRunId, r.keptLoadRunId])).toEqual([
      ['1', 's', 'r'],
    ]);
    expect(plan.unrepairable).toEqual([
      {
        postId: '1',
        loadRunId: 'r',
        reason: expect.stringContaining('2 rows of this id share load_run_id r'),
      },
      { postId: '2', loadRunId: null, reason: 'load_run_id is NULL' },
    ]);
  });

  test('an id with one copy is left alone', () => {
    expect(planRepair([copy('1', 'r', T1)])).toEqual({ removed: [], unrepairable: [] });
  });
});

test('compareCopies orders by ingested_at, then load_run_id (NULL last)', () => {
  expect(compareCopies(copy('1', 'b', T1), copy('1', 'a', T2))).toBeLessThan(0);
  expect(compareCopies(copy('1', 'b', T1), copy('1', 'a', T1))).toBeGreaterThan(0);
  expect(compareCopies(copy('1', null, T1), copy('1', 'a', T1))).toBeGreaterThan(0);
  expect(compareCopies(copy('1', 'a', T1), copy('1', 'a', T1))).toBe(0);
});

test('rowKey is unambiguous: the id length prefixes it', () => {
  expect(rowKey('12', '3x')).not.toBe(rowKey('123', 'x'));
  expect(rowKey('12', '3x')).toBe('2:123x');
});

describe('repairSql', () => {
  const posts = '`p.d.posts`';
  test('duplicate ids: partition-pruned by a DATE literal when since is given, bounded, ordered', () => {
    expect(repairSql.duplicateIds(posts, '2026-03-01', 100)).toBe(
      "SELECT id FROM `p.d.posts` WHERE DATE(created_at) >= DATE '2026-03-01'\nGROUP BY id HAVING COUNT(*) > 1 ORDER BY id LIMIT 100",
    );
    expect(repairSql.duplicateIds(posts, undefined, 5)).toBe(
      'SELECT id FROM `p.d.posts`\nGROUP BY id HAVING COUNT(*) > 1 ORDER BY id LIMIT 5',
    );
  });
  test('copies are read by an id array parameter', () => {
    expect(repairSql.copies(posts, '2026-03-01')).toBe(
      "SELECT id, load_run_id, message_id, ingested_at FROM `p.d.posts` WHERE DATE(created_at) >= DATE '2026-03-01' AND id IN UNNEST(@ids)",
    );
  });
  test('the delete matches (id, load_run_id) pairs, never the cross product of ids and runs', () => {
    const sql = repairSql.delete(posts, undefined);
    expect(sql).toBe(
      "DELETE FROM `p.d.posts` WHERE id IN UNNEST(@ids) AND load_run_id IS NOT NULL AND CONCAT(CAST(LENGTH(id) AS STRING), ':', id, load_run_id) IN UNNEST(@keys)",
    );
    expect(sql).not.toMatch(/load_run_id IN UNNEST/);
    expect(repairSql.delete(posts, '2026-03-01')).toContain(
      "WHERE DATE(created_at) >= DATE '2026-03-01' AND ",
    );
  });
});

test('repairRows maps removals to load_repairs rows', () => {
  const [removed] = planRepair([copy('9', 'a', T1), copy('9', 'b', T2)]).removed;
  expect(repairRows([removed!], 'rep', T2)).toEqual([
    {
      post_id: '9',
      removed_load_run_id: 'b',
      removed_message_id: 'm_b',
      removed_ingested_at: T2,
      kept_load_run_id: 'a',
      repair_id: 'rep',
      repaired_at: T2,
    },
  ]);
});

test('job ids: deterministic per repair id and plan, safe characters only', () => {
  const plan = planRepair([copy('9', 'a', T1), copy('9', 'b', T2)]).removed;
  const other = planRepair([copy('9', 'a', T1), copy('9', 'c', T2)]).removed;
  const base = repairJobBase('wf:run-1:3', plan);
  expect(base).toMatch(/^repair_wf_run-1_3_[0-9a-f]{16}$/);
  expect(repairJobBase('wf:run-1:3', plan)).toBe(base);
  expect(repairJobBase('wf:run-1:3', other)).not.toBe(base);
});

test('isIsoDate accepts real calendar days only', () => {
  expect(isIsoDate('2026-02-28')).toBe(true);
  expect(isIsoDate('2024-02-29')).toBe(true);
  expect(isIsoDate('2026-02-30')).toBe(false);
  expect(isIsoDate('2026-13-01')).toBe(false);
  expect(isIsoDate("2026-01-01' OR TRUE --")).toBe(false);
});

describe('npm run repair:duplicates arguments', () => {
  const now = new Date('2026-03-01T10:20:30.456Z');
  test('defaults: the uniqueness window, a manual repair id from the time', () => {
    expect(parseRepairArgs([], now)).toEqual({
      since: undefined,
      all: false,
      maxIds: undefined,
      repairId: 'manual-20260301T102030456Z',
      dryRun: false,
    });
  });
  test('every flag', () => {
    expect(
      parseRepairArgs(
        ['--since', '2026-02-01', '--max-ids', '100', '--repair-id', 'ops-7', '--dry-run'],
        now,
      ),
    ).toEqual({ since: '2026-02-01', all: false, maxIds: 100, repairId: 'ops-7', dryRun: true });
    expect(parseRepairArgs(['--all'], now)).toMatchObject({ all: true, since: undefined });
  });
  test('bad values name the flag', () => {
    expect(() => parseRepairArgs(['--since', '2026-02-30'])).toThrow(/--since/);
    expect(() => parseRepairArgs(['--max-ids', '0'])).toThrow(/--max-ids/);
    expect(() => parseRepairArgs(['--all', '--since', '2026-02-01'])).toThrow(/exclude/);
    expect(() => parseRepairArgs(['--bogus'])).toThrow();
  });
});

test('a concurrent-update conflict is recognised (retried, not classified as an invalid query)', () => {
  const err = Object.assign(
    new Error('Could not serialize access to table p:d.posts due to concurrent update'),
    { code: 400 },
  );
  expect(isConcurrentUpdate(err)).toBe(true);
  expect(isConcurrentUpdate(new Error('Syntax error'))).toBe(false);
  expect(isConcurrentUpdate(undefined)).toBe(false);
});
