/**
 * The pipeline's side of the compliance contract, offline: the SQL that picks the ingested ids and
 * applies X's events, the journal rows, and the deterministic DML job ids. (Kept beside the
 * stand-in's compliance test; it belongs in test/unit/adapters/bigquery/ when that folder is free.)
 */
import {
  REDACTED_COLUMNS,
  chunks,
  complianceJobBase,
  complianceRows,
  complianceSql,
  distinctEvents,
  timestampLiteral,
} from '../../../../src/adapters/bigquery/compliance';

const posts = '`p.d.posts`';

test('the window query uses TIMESTAMP literals, an id cursor parameter and a limit', () => {
  expect(complianceSql.ingestedIds(posts, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', 100)).toBe(
    "SELECT DISTINCT id FROM `p.d.posts` WHERE ingested_at > TIMESTAMP '2026-01-01T00:00:00.000Z' AND " +
      "ingested_at <= TIMESTAMP '2026-01-02T00:00:00.000Z' AND id > @after_id ORDER BY id LIMIT 100",
  );
  // The first run: everything up to `until`, rows without ingested_at too.
  expect(complianceSql.ingestedIds(posts, null, '2026-01-02T00:00:00Z', 5)).toContain(
    "(ingested_at IS NULL OR ingested_at <= TIMESTAMP '2026-01-02T00:00:00Z')",
  );
  expect(() => timestampLiteral("2026-01-01' OR 1=1 --")).toThrow(/ISO-8601/);
  expect(() => timestampLiteral('2026-13-45T00:00:00Z')).toThrow(/ISO-8601/);
});

test('delete removes every row of the ids; redact nulls text, raw and author of rows not yet redacted', () => {
  expect(complianceSql.act(posts, 'delete')).toBe('DELETE FROM `p.d.posts` WHERE id IN UNNEST(@ids)');
  const redact = complianceSql.act(posts, 'redact');
  for (const c of REDACTED_COLUMNS) {
    expect(redact).toContain(`${c} = NULL`);
    expect(redact).toContain(`${c} IS NOT NULL`);
  }
  expect(complianceSql.rowsToAct(posts, 'redact')).toContain('AND (text IS NOT NULL OR raw IS NOT NULL');
  expect(complianceSql.rowsToAct(posts, 'delete')).not.toContain('IS NOT NULL');
});

test('journal rows carry X’s action, reason and event time, and the rows counted', () => {
  const rows = complianceRows(
    [
      {
        id: '1',
        action: 'delete',
        reason: 'deleted',
        createdAt: '2024-01-01T00:00:00Z',
        redactedAt: '2024-02-01T00:00:00Z',
      },
      { id: '2', action: 'delete', createdAt: '2024-01-01T00:00:00Z' },
    ],
    new Map([['1', 1]]),
    '77',
    'redact',
    '2026-01-01T00:00:00.000Z',
  );
  expect(rows).toEqual([
    {
      job_id: '77',
      post_id: '1',
      action: 'redacted',
      x_action: 'delete',
      x_reason: 'deleted',
      x_created_at: '2024-02-01T00:00:00Z',
      rows_affected: 1,
      applied_at: '2026-01-01T00:00:00.000Z',
    },
    {
      job_id: '77',
      post_id: '2',
      action: 'redacted',
      x_action: 'delete',
      x_reason: null,
      x_created_at: '2024-01-01T00:00:00Z',
      rows_affected: 0,
      applied_at: '2026-01-01T00:00:00.000Z',
    },
  ]);
});

test('events are de-duplicated by id, ids chunked, DML job ids derived from the job and its ids', () => {
  expect(
    distinctEvents([
      { id: '1', n: 1 },
      { id: '2', n: 2 },
      { id: '1', n: 3 },
    ]),
  ).toEqual([
    { id: '1', n: 1 },
    { id: '2', n: 2 },
  ]);
  expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  const a = complianceJobBase('123', 'delete', ['1', '2']);
  expect(a).toMatch(/^compliance_123_delete_[0-9a-f]{16}$/);
  expect(complianceJobBase('123', 'delete', ['1', '2'])).toBe(a);
  expect(complianceJobBase('123', 'delete', ['1', '3'])).not.toBe(a);
  expect(complianceJobBase('123', 'redact', ['1', '2'])).not.toBe(a);
});
