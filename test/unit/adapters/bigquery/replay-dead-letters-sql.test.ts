/** The dead-letter replay's SQL and its input checks, offline. */
import {
  DEAD_LETTER_STAGES,
  REPLAY_KEY_SQL,
  checkDeadLetterFilter,
  deadLetterSql,
  parseReplayBound,
} from '../../../../src/adapters/bigquery/dead-letters';

const DL = '`p.d.posts_dead_letter`';
const J = '`p.d.dead_letter_replays`';

describe('parseReplayBound', () => {
  test('a calendar day is its midnight UTC; a timestamp with a zone is normalised to UTC', () => {
    expect(parseReplayBound('2026-12-01')).toEqual({ ok: true, iso: '2026-12-01T00:00:00.000Z' });
    expect(parseReplayBound('2026-12-01T10:30:00+02:00')).toEqual({
      ok: true,
      iso: '2026-12-01T08:30:00.000Z',
    });
    expect(parseReplayBound('2026-12-01T10:30Z')).toEqual({ ok: true, iso: '2026-12-01T10:30:00.000Z' });
  });
  test.each(['2026-02-30', '2026-13-01', '01/12/2026', '2026-12-01T10:30:00', "2026-12-01' OR 1=1 --", ''])(
    'refuses %j',
    (v) => expect(parseReplayBound(v)).toMatchObject({ ok: false }),
  );
});

describe('checkDeadLetterFilter', () => {
  test('a good filter has no problems; every stage the loader writes is accepted', () => {
    expect(checkDeadLetterFilter({})).toEqual([]);
    for (const stage of DEAD_LETTER_STAGES) expect(checkDeadLetterFilter({ stage })).toEqual([]);
    expect(DEAD_LETTER_STAGES).toEqual(
      expect.arrayContaining(['validate', 'schema_version', 'schema_conflict', 'bigquery_insert']),
    );
  });
  test('names each bad setting', () => {
    expect(checkDeadLetterFilter({ since: 'yesterday', until: '2026-12-32', stage: 'nope' })).toEqual([
      expect.stringMatching(/^since: expected YYYY-MM-DD/),
      expect.stringMatching(/^until: not a real date/),
      expect.stringMatching(/^stage: expected one of malformed, decode, validate/),
    ]);
    expect(checkDeadLetterFilter({ since: '2026-12-02', until: '2026-12-01' })).toEqual([
      'until (2026-12-01) must be after since (2026-12-02)',
    ]);
  });
});

describe('deadLetterSql.page', () => {
  test('keyset-paginated on the replay key, skipping what other replays loaded, with a limit', () => {
    const sql = deadLetterSql.page(DL, J, { limit: 500 });
    expect(sql).toContain(`FROM ${DL} D`);
    expect(sql).toContain(`${REPLAY_KEY_SQL} > @after`);
    expect(sql).toContain(
      `NOT IN (SELECT J.payload_hash FROM ${J} J WHERE J.outcome IN ('replayed', 'already_loaded') AND J.replay_id != @replayId)`,
    );
    expect(sql).toMatch(/ORDER BY replay_key\nLIMIT 500$/);
    expect(sql).not.toContain('@stage');
    expect(sql).not.toContain('first_seen >=');
  });
  test('the window prunes partitions with DATE literals and filters with TIMESTAMP literals; the stage is a parameter', () => {
    const sql = deadLetterSql.page(DL, J, {
      since: '2026-12-01',
      until: '2026-12-03T12:00:00Z',
      stage: 'validate',
      limit: 10,
    });
    expect(sql).toContain("DATE(D.first_seen) >= DATE '2026-12-01'");
    expect(sql).toContain("D.first_seen >= TIMESTAMP '2026-12-01T00:00:00.000Z'");
    expect(sql).toContain("DATE(D.first_seen) <= DATE '2026-12-03'");
    expect(sql).toContain("D.first_seen < TIMESTAMP '2026-12-03T12:00:00.000Z'");
    expect(sql).toContain('D.error_stage = @stage');
    expect(sql).not.toContain('validate');
  });
  test('nothing unchecked reaches the SQL', () => {
    expect(() => deadLetterSql.page(DL, J, { since: "2026-12-01' --", limit: 1 })).toThrow(/since/);
    expect(() => deadLetterSql.page(DL, J, { limit: 0 })).toThrow(/limit/);
  });
});

test('deadLetterSql.loadedPosts prunes by the posts created_at days when known', () => {
  expect(deadLetterSql.loadedPosts('`p.d.posts`', ['2026-11-25', '2026-11-26'])).toBe(
    "SELECT id, load_run_id, message_id, ingested_at FROM `p.d.posts` WHERE id IN UNNEST(@ids) AND DATE(created_at) BETWEEN DATE '2026-11-25' AND DATE '2026-11-26' ORDER BY id, ingested_at",
  );
  expect(deadLetterSql.loadedPosts('`p.d.posts`', null)).not.toContain('DATE(');
});
