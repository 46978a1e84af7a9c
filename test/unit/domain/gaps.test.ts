import {
  FINISHED_GAPS_KEPT,
  SEARCH_MIN_AGE_MS,
  applyFillResult,
  countGaps,
  endpointFor,
  recordGaps,
  searchWindow,
  searchableAt,
  type Gap,
  type GapReport,
} from '../../../src/domain/gaps';

const NOW = '2026-12-02T12:00:00.000Z';
const report = (
  id: string,
  start: string,
  end: string,
  reason: GapReport['reason'] = 'worker-restart',
): GapReport => ({
  id,
  start,
  end,
  reason,
});
const never = () => false;

describe('the gap ledger', () => {
  it('records a reported gap once, even when the report is delivered twice', () => {
    const r = report('a/1', '2026-12-02T11:00:00.000Z', '2026-12-02T11:01:00.000Z');
    const once = recordGaps([], [r], NOW, never);
    const twice = recordGaps(once, [r], NOW, never);
    expect(twice).toHaveLength(1);
    expect(twice[0]).toMatchObject({ id: 'a/1', state: 'pending', recordedAt: NOW });
  });

  it('ignores an inverted or unparsable interval instead of searching nonsense', () => {
    const out = recordGaps(
      [],
      [report('x', '2026-12-02T11:01:00.000Z', '2026-12-02T11:00:00.000Z'), report('y', 'soon', 'later')],
      NOW,
      never,
    );
    expect(out).toEqual([]);
  });

  it('marks a gap skipped when the caller says so (pause with X_GAP_FILL_ON_RESUME=false)', () => {
    const out = recordGaps(
      [],
      [report('p', '2026-12-02T11:00:00.000Z', '2026-12-02T11:05:00.000Z', 'paused')],
      NOW,
      (r) => r.reason === 'paused',
    );
    expect(out[0]!.state).toBe('skipped');
  });

  it('applies a fill result and keeps unfinished gaps when trimming finished ones', () => {
    let ledger: Gap[] = [];
    const n = FINISHED_GAPS_KEPT + 5;
    for (let i = 0; i < n; i++) {
      const start = new Date(Date.parse(NOW) - (n - i) * 60_000).toISOString();
      ledger = recordGaps(ledger, [report(`g${i}`, start, start)], NOW, never);
    }
    for (let i = 1; i < n; i++) {
      ledger = applyFillResult(
        ledger,
        { gapId: `g${i}`, state: 'filled', postsFound: i, postsPublished: i, postsRead: i, unsearchable: [] },
        NOW,
      );
    }
    expect(ledger.filter((g) => g.state === 'filled')).toHaveLength(FINISHED_GAPS_KEPT);
    expect(ledger[0]).toMatchObject({ id: 'g0', state: 'pending' });
    expect(ledger.at(-1)).toMatchObject({ id: `g${n - 1}`, postsFound: n - 1, finishedAt: NOW });
    expect(countGaps(ledger, undefined, { found: n, postsFilled: 7 })).toEqual({
      found: n,
      open: 0,
      pending: 1,
      filled: FINISHED_GAPS_KEPT,
      unrecoverable: 0,
      skipped: 0,
      postsFilled: 7,
    });
  });
});

describe('search windows', () => {
  const gap = { start: '2026-12-02T11:00:00.000Z', end: '2026-12-02T11:02:00.000Z' };
  it('widens the gap by the margin on both sides', () => {
    const now = Date.parse('2026-12-02T12:00:00.000Z');
    const w = searchWindow(gap, 30_000, now);
    expect(new Date(w.startMs).toISOString()).toBe('2026-12-02T10:59:30.000Z');
    expect(w.endMs).toBe(Date.parse('2026-12-02T11:02:30.000Z') + 1);
  });

  it('never asks for an end_time less than 10 s old, and says when the whole window is searchable', () => {
    const now = Date.parse(gap.end) + 5_000;
    expect(searchWindow(gap, 30_000, now).endMs).toBe(now - SEARCH_MIN_AGE_MS);
    const at = searchableAt(gap, 30_000);
    expect(searchWindow(gap, 30_000, at).endMs).toBe(Date.parse(gap.end) + 30_001);
  });

  it('uses recent search within 7 days, full-archive beyond when configured, else none', () => {
    const now = Date.parse(NOW);
    const day = 24 * 3600_000;
    expect(endpointFor(now - 6 * day, now, false)).toBe('recent');
    expect(endpointFor(now - 8 * day, now, true)).toBe('all');
    expect(endpointFor(now - 8 * day, now, false)).toBeUndefined();
  });
});
