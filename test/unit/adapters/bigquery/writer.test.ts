/** The writer's pure parts (SQL builders, pruning, chunking, partial failures) and error classification. */
import { ApplicationFailure } from '@temporalio/common';
import { classifyBigQueryError } from '../../../../src/adapters/bigquery/errors';
import {
  buildInsertIfAbsent,
  buildInsertAbsentSql,
  stagingSlotId,
  chunkRows,
  dateRange,
  pruneSince,
  rejectedFromPartialFailure,
} from '../../../../src/adapters/bigquery/writer';
import { DEAD_LETTER_TABLE, LOAD_RUNS_TABLE, POSTS_TABLE } from '../../../../src/domain/bigquery-schema';

describe('dateRange', () => {
  test('min and max UTC dates of the column', () => {
    expect(
      dateRange(
        [
          { created_at: '2026-11-25T23:59:59+02:00' },
          { created_at: '2026-11-20T00:00:00Z' },
          { created_at: '2026-11-26T01:00:00Z' },
        ],
        'created_at',
      ),
    ).toEqual(['2026-11-20', '2026-11-26']);
  });
  test('a missing or unparsable value disables pruning', () => {
    expect(
      dateRange([{ created_at: '2026-11-25T00:00:00Z' }, { created_at: null }], 'created_at'),
    ).toBeNull();
    expect(dateRange([{ created_at: 'soon' }], 'created_at')).toBeNull();
  });
});

test('buildInsertAbsentSql inserts unmatched keys only, pruned by DATE literals', () => {
  const sql = buildInsertAbsentSql(
    '`p.d.posts`',
    '`p.d._stg`',
    POSTS_TABLE,
    ['id', 'text'],
    ['2026-11-20', '2026-11-26'],
  );
  expect(sql).toBe(
    [
      'INSERT INTO `p.d.posts` (`id`, `text`)',
      'SELECT S.`id`, S.`text`',
      'FROM `p.d._stg` S',
      "WHERE S.id NOT IN (SELECT T.id FROM `p.d.posts` T WHERE DATE(T.created_at) BETWEEN DATE '2026-11-20' AND DATE '2026-11-26')",
    ].join('\n'),
  );
  expect(buildInsertAbsentSql('t', 's', POSTS_TABLE, ['id'], null)).toContain(
    'WHERE S.id NOT IN (SELECT T.id FROM t T)',
  );
});

describe('buildInsertIfAbsent', () => {
  test('typed parameters, typed NULL and empty-array literals, NOT EXISTS on the key with a partition bound', () => {
    const { sql, params, types } = buildInsertIfAbsent(
      '`p.d.load_runs`',
      LOAD_RUNS_TABLE,
      LOAD_RUNS_TABLE.columns.filter((c) =>
        ['run_id', 'attempt', 'started_at', 'finished_at', 'columns_added'].includes(c.name),
      ),
      [
        {
          run_id: 'lr_1',
          attempt: 2,
          started_at: '2026-11-25T12:00:00.000Z',
          finished_at: null,
          columns_added: [],
        },
        {
          run_id: 'lr_2',
          attempt: 1,
          started_at: '2026-11-25T12:00:00.000Z',
          finished_at: null,
          columns_added: ['x'],
        },
      ],
      '2026-11-24',
    );
    expect(sql).toContain(
      'INSERT INTO `p.d.load_runs` (`run_id`, `attempt`, `started_at`, `finished_at`, `columns_added`)',
    );
    expect(sql).toContain(
      'STRUCT(@run_id_0 AS `run_id`, @attempt_0 AS `attempt`, @started_at_0 AS `started_at`, CAST(NULL AS TIMESTAMP) AS `finished_at`, ARRAY<STRING>[] AS `columns_added`)',
    );
    expect(sql).toContain('@columns_added_1 AS `columns_added`');
    expect(sql).toMatch(
      /WHERE NOT EXISTS \(SELECT 1 FROM `p\.d\.load_runs` T WHERE T\.`run_id` = S\.`run_id` AND DATE\(T\.`started_at`\) >= DATE '2026-11-24'\)$/,
    );
    expect(params).toEqual({
      run_id_0: 'lr_1',
      attempt_0: '2',
      started_at_0: '2026-11-25T12:00:00.000Z',
      run_id_1: 'lr_2',
      attempt_1: '1',
      started_at_1: '2026-11-25T12:00:00.000Z',
      columns_added_1: ['x'],
    });
    expect(types).toMatchObject({
      attempt_0: 'INT64',
      started_at_0: 'TIMESTAMP',
      columns_added_1: ['STRING'],
    });
  });

  test('without a bound the existence check is on the key only', () => {
    const { sql } = buildInsertIfAbsent(
      't',
      DEAD_LETTER_TABLE,
      DEAD_LETTER_TABLE.columns,
      [{ message_id: 'm' }],
      null,
    );
    expect(sql).toMatch(/WHERE T\.`payload_hash` = S\.`payload_hash`\)$/);
  });
});

test('pruneSince: a day before the earliest value, null when one is missing', () => {
  expect(pruneSince([{ t: '2026-11-25T00:30:00Z' }, { t: '2026-11-27T00:00:00Z' }], 't')).toBe('2026-11-24');
  expect(pruneSince([{ t: '2026-11-25T00:30:00Z' }, { t: null }], 't')).toBeNull();
  expect(pruneSince([], 't')).toBeNull();
});

test('chunkRows bounds rows and bytes per statement, never losing or reordering a row', () => {
  const rows = Array.from({ length: 1201 }, (_, i) => ({ i: String(i) }));
  const byRows = chunkRows(rows, 500);
  expect(byRows.map((c) => c.length)).toEqual([500, 500, 201]);
  expect(byRows.flat()).toEqual(rows);
  const big = [{ p: 'x'.repeat(600) }, { p: 'y'.repeat(600) }, { p: 'z' }];
  expect(chunkRows(big, 500, 1000).map((c) => c.length)).toEqual([1, 2]);
  expect(chunkRows([{ p: 'x'.repeat(5000) }], 500, 1000)).toHaveLength(1); // an oversized row still goes
});

describe('rejectedFromPartialFailure', () => {
  test('maps each failed row (raw or plain) to its reasons', () => {
    const err = Object.assign(new Error('partial'), {
      name: 'PartialFailureError',
      errors: [
        { row: { insertId: 'a', json: { id: '1' } }, errors: [{ reason: 'invalid', message: 'bad ts' }] },
        { row: { id: '2' }, errors: [{ reason: 'stopped' }, { message: 'x' }] },
        { row: { id: '3' }, errors: [] },
      ],
    });
    expect(rejectedFromPartialFailure(err)).toEqual([
      { row: { id: '1' }, reason: 'invalid: bad ts' },
      { row: { id: '2' }, reason: 'stopped:; error: x' },
      { row: { id: '3' }, reason: 'rejected by BigQuery' },
    ]);
  });
  test('anything else is not a partial failure', () => {
    expect(rejectedFromPartialFailure(new Error('boom'))).toBeNull();
  });
});

describe('classifyBigQueryError', () => {
  const ctx = { operation: 'merge', table: 'ds.posts' };
  test.each([
    [
      '403',
      { code: 403, message: 'denied' },
      'BigQueryPermissionDenied',
      /permission denied.*roles\/bigquery/,
    ],
    [
      'accessDenied reason',
      { code: 400, errors: [{ reason: 'accessDenied' }] },
      'BigQueryPermissionDenied',
      /permission/,
    ],
    ['404', { code: 404, message: 'Not found: Dataset' }, 'BigQueryNotFound', /not found.*npm run setup/],
    ['notFound reason', { errors: [{ reason: 'notFound' }] }, 'BigQueryNotFound', /not found/],
    [
      '400 invalid',
      { code: 400, errors: [{ reason: 'invalidQuery' }], message: 'Syntax error' },
      'BigQueryInvalidRequest',
      /rejected \(Syntax error\)/,
    ],
  ])('%s → non-retryable ApplicationFailure', (_n, raw, type, message) => {
    const out = classifyBigQueryError(
      Object.assign(new Error(String((raw as { message?: string }).message ?? 'x')), raw),
      ctx,
    );
    expect(out).toBeInstanceOf(ApplicationFailure);
    expect(out).toMatchObject({ type, nonRetryable: true });
    expect(out.message).toMatch(/^merge on ds\.posts: /);
    expect(out.message).toMatch(message);
  });
  test.each([
    ['500', { code: 500 }],
    ['503', { code: 503 }],
    ['429', { code: 429 }],
    ['backendError', { code: 400, errors: [{ reason: 'backendError' }] }],
    ['ECONNRESET', { code: 'ECONNRESET' }],
  ])('%s → rethrown as is (retried by policy)', (_n, raw) => {
    const err = Object.assign(new Error('transient'), raw);
    expect(classifyBigQueryError(err, ctx)).toBe(err);
  });
  test('an ApplicationFailure passes through', () => {
    const f = ApplicationFailure.nonRetryable('x', 'Other');
    expect(classifyBigQueryError(f, ctx)).toBe(f);
  });
});

describe('stagingSlotId', () => {
  const at = (iso: string) => new Date(iso);
  it('reuses one table per load workflow per half hour, 48 a day', () => {
    const a = stagingSlotId('posts', 'x-ingest-tesla-load', at('2026-12-02T13:00:00Z'));
    expect(a).toBe('_stg_posts_x_ingest_tesla_load_26');
    expect(stagingSlotId('posts', 'x-ingest-tesla-load', at('2026-12-02T13:29:59Z'))).toBe(a);
    expect(stagingSlotId('posts', 'x-ingest-tesla-load', at('2026-12-02T13:30:00Z'))).not.toBe(a);
    // The same half hour of the next day: the same table, so the set stays fixed.
    expect(stagingSlotId('posts', 'x-ingest-tesla-load', at('2026-12-03T13:10:00Z'))).toBe(a);
    const day = new Set(
      Array.from({ length: 24 * 60 }, (_, m) =>
        stagingSlotId('posts', 'w', new Date(Date.UTC(2026, 11, 2, 0, m))),
      ),
    );
    expect(day.size).toBe(48);
    expect(stagingSlotId('posts', 'other-load', at('2026-12-02T13:00:00Z'))).not.toBe(a);
  });
});

test('buildInsertAbsentSql takes only the staged rows of its own run when given one', () => {
  const sql = buildInsertAbsentSql('t', 's', POSTS_TABLE, ['id'], null, "lr_abc'; DROP");
  expect(sql).toContain("WHERE S.load_run_id = 'lr_abcDROP' AND S.id NOT IN");
});
