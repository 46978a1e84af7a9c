import { POSTS_TABLE } from '../../../src/domain/bigquery-schema';
import {
  DEFAULT_QUALITY_CHECKS as D,
  closedWindow,
  evaluateDeadLetterRate,
  evaluateFreshness,
  evaluateReconciliation,
  evaluateSchemaDrift,
  evaluateValidity,
  evaluateVolume,
  qualityRunId,
  resolveQualityChecks,
  toDqResultRow,
  verdictOf,
  volumeWindows,
  worstStatus,
} from '../../../src/domain/quality';
import { qualitySql } from '../../../src/adapters/bigquery/quality-queries';

const asOf = '2026-11-25T18:04:20.000Z';
const live = POSTS_TABLE.columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode }));

test('defaults are overridable per check without losing the others', () => {
  const c = resolveQualityChecks({ volume: { minBaseline: 5 }, freshness: { severity: 'warn' } });
  expect(c.volume).toEqual({ ...D.volume, minBaseline: 5 });
  expect(c.freshness.severity).toBe('warn');
  expect(c.uniqueness).toEqual(D.uniqueness);
});

test('windows are closed on minute boundaries before asOf', () => {
  expect(closedWindow(asOf, 10, 5)).toEqual({
    start: '2026-11-25T17:49:00.000Z',
    end: '2026-11-25T17:59:00.000Z',
  });
  expect(volumeWindows(asOf, D.volume)).toEqual({
    from: '2026-11-25T16:47:00.000Z',
    to: '2026-11-25T18:02:00.000Z',
    count: 5,
  });
});

test('freshness: stale and lagging loads breach; fresh ones do not', () => {
  const ok = evaluateFreshness(
    { rows: 5, maxIngestedAt: '2026-11-25T18:03:00Z', maxCreatedAt: '2026-11-25T18:02:50Z' },
    asOf,
    D.freshness,
  );
  expect(ok.status).toBe('ok');
  const stale = evaluateFreshness(
    { rows: 5, maxIngestedAt: '2026-11-25T17:00:00Z', maxCreatedAt: '2026-11-25T16:59:00Z' },
    asOf,
    D.freshness,
  );
  expect(stale).toMatchObject({
    status: 'fail',
    details: expect.stringMatching(/^stale: newest row ingested 64\.3 min ago/),
  });
  const lag = evaluateFreshness(
    { rows: 5, maxIngestedAt: '2026-11-25T18:04:00Z', maxCreatedAt: '2026-11-25T17:40:00Z' },
    asOf,
    D.freshness,
  );
  expect(lag.details).toMatch(/^lagging: newest load is 24\.0 min after/);
  expect(
    evaluateFreshness({ rows: 0, maxIngestedAt: null, maxCreatedAt: null }, asOf, D.freshness).details,
  ).toMatch(/no posts ingested/);
});

test('volume: drop, thin baseline, zero while connected', () => {
  expect(evaluateVolume([40, 40, 40, 40, 5], asOf, D.volume, true)).toMatchObject({
    status: 'fail',
    observed: 5,
    threshold: 10,
  });
  expect(evaluateVolume([40, 40, 40, 40, 30], asOf, D.volume, true).status).toBe('ok');
  expect(evaluateVolume([1, 2, 1, 0, 0], asOf, D.volume, false).status).toBe('ok');
  expect(evaluateVolume([1, 2, 1, 0, 0], asOf, D.volume, true).details).toMatch(/^zero volume/);
  expect(evaluateVolume([40, 40, 40, 40, 5], asOf, { ...D.volume, severity: 'warn' }, true).status).toBe(
    'warn',
  );
});

test('validity names each broken rule', () => {
  const r = evaluateValidity(
    {
      rows: 10,
      invalidRows: 3,
      badId: 1,
      futureCreatedAt: 1,
      unknownLang: 1,
      negativeMetric: 0,
      examples: ['x1'],
    },
    asOf,
    D.validity,
  );
  expect(r.status).toBe('fail');
  expect(r.details).toMatch(
    /non-decimal id: 1.*future created_at.*unknown lang code: 1.* of 10 rows \(30\.0%\), e\.g\. ids x1/,
  );
});

describe('schema drift', () => {
  test('the schema in code passes', () => {
    expect(evaluateSchemaDrift(live, asOf, D.schema_drift).status).toBe('ok');
  });
  test('missing columns and type changes fail', () => {
    const drifted = live
      .filter((c) => c.name !== 'lang')
      .map((c) => (c.name === 'like_count' ? { ...c, type: 'STRING' } : c));
    const r = evaluateSchemaDrift(drifted, asOf, D.schema_drift);
    expect(r.status).toBe('fail');
    expect(r.details).toMatch(
      /missing column: lang STRING; type change: like_count is STRING, the code says INT64/,
    );
  });
  test('legacy type names are not drift', () => {
    const legacy = live.map((c) =>
      c.type === 'INT64' ? { ...c, type: 'INTEGER' } : c.type === 'BOOL' ? { ...c, type: 'BOOLEAN' } : c,
    );
    expect(evaluateSchemaDrift(legacy, asOf, D.schema_drift).status).toBe('ok');
  });
  test('loader-evolved columns warn, foreign ones fail', () => {
    const evolved = [
      ...live,
      { name: 'note', type: 'STRING', mode: 'NULLABLE', description: 'Post field note' },
    ];
    expect(evaluateSchemaDrift(evolved, asOf, D.schema_drift)).toMatchObject({ status: 'warn', observed: 1 });
    const foreign = [
      ...evolved,
      { name: 'x', type: 'STRING', mode: 'REQUIRED', description: 'Post field x' },
    ];
    expect(evaluateSchemaDrift(foreign, asOf, D.schema_drift)).toMatchObject({ status: 'fail', observed: 2 });
  });
});

test('dead-letter rate ignores a few dead letters but fails a burst', () => {
  expect(
    evaluateDeadLetterRate(
      { deadLetters: 2, postsIngested: 10, byStage: { malformed: 2 } },
      asOf,
      D.dead_letter_rate,
    ).status,
  ).toBe('ok');
  const burst = evaluateDeadLetterRate(
    { deadLetters: 10, postsIngested: 90, byStage: { validate: 10 } },
    asOf,
    D.dead_letter_rate,
  );
  expect(burst).toMatchObject({ status: 'fail', observed: 0.1, threshold: 0.05 });
  expect(burst.details).toMatch(/^dead-letter burst: 10 dead letters \/ 100 messages \(10\.0%\)/);
});

test('reconciliation: shortfall is a loss, surplus is not, no counters is ok', () => {
  const counts = [
    { minute: '2026-11-25T17:48:00.000Z', published: 100 }, // before the window
    { minute: '2026-11-25T17:49:00.000Z', published: 5 },
    { minute: '2026-11-25T17:58:00.000Z', published: 5 },
    { minute: '2026-11-25T17:59:00.000Z', published: 100 }, // after the window
  ];
  expect(evaluateReconciliation({ loaded: 9, deadLetters: 1 }, counts, asOf, D.reconciliation).status).toBe(
    'ok',
  );
  const loss = evaluateReconciliation({ loaded: 8, deadLetters: 1 }, counts, asOf, D.reconciliation);
  expect(loss).toMatchObject({ status: 'fail', observed: 1 });
  expect(loss.details).toMatch(
    /^loss: 1 message\(s\) published but neither loaded nor dead-lettered \(published 10/,
  );
  expect(
    evaluateReconciliation({ loaded: 12, deadLetters: 0 }, counts, asOf, D.reconciliation).details,
  ).toMatch(/counters incomplete/);
  expect(evaluateReconciliation(undefined, undefined, asOf, D.reconciliation)).toMatchObject({
    status: 'ok',
    details: 'no stream counters',
  });
});

test('verdict = worst status and the checks that are not ok; rows carry the run', () => {
  const a = evaluateVolume([40, 40, 40, 40, 30], asOf, D.volume, true);
  const b = evaluateSchemaDrift(
    [...live, { name: 'n', type: 'STRING', mode: 'NULLABLE', description: 'Post field n' }],
    asOf,
    D.schema_drift,
  );
  const v = verdictOf('r1', [a, b], asOf);
  expect(v).toEqual({
    runId: 'r1',
    status: 'warn',
    finishedAt: asOf,
    problems: [{ check: 'schema_drift', status: 'warn', details: b.details }],
  });
  expect(worstStatus(['ok', 'fail', 'warn'])).toBe('fail');
  expect(toDqResultRow('r1', asOf, { ...a, observed: Number.NaN })).toMatchObject({
    run_id: 'r1',
    check: 'volume',
    observed: null,
    checked_at: asOf,
  });
  expect(qualityRunId('wf', 'run', 3)).toBe('wf:run:3');
});

test('every posts / dead-letter query is partition-pruned and parameterised', () => {
  const posts = '`p.d.posts`';
  const dl = '`p.d.dl`';
  const postsQueries = [
    qualitySql.freshness(posts),
    qualitySql.volume(posts),
    qualitySql.uniqueness(posts),
    qualitySql.uniquenessExamples(posts),
    qualitySql.completeness(posts, ['id', 'text', 'created_at', 'author_id']),
    qualitySql.validity(posts),
    qualitySql.validityExamples(posts),
    qualitySql.postsIngested(posts),
    qualitySql.reconciliationPosts(posts),
  ];
  for (const q of postsQueries) expect(q).toMatch(/WHERE created_at >= @(from|created_from)/);
  expect(qualitySql.deadLetters(dl)).toMatch(/WHERE first_seen >= @from/);
  expect(qualitySql.reconciliationDeadLetters(dl)).toMatch(/WHERE first_seen >= @start/);
  const write = qualitySql.writeResults('`p.d.r`', [new Set(['threshold'])]);
  expect(write).toMatch(/CAST\(NULL AS FLOAT64\) AS `threshold`/);
  expect(write).toMatch(/WHERE checked_at = @checked_at AND run_id = @run_id/);
  expect(() => qualitySql.completeness(posts, ['raw' as never])).toThrow(/unknown field/);
});
