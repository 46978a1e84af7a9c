/**
 * The stream activity's helpers: the duplicate-suppression window, the minute of a timestamp, and
 * the backfill a retried attempt asks for.
 */
import { RecentIds, minuteOf, resumeBackfillMinutes } from '../../../src/activities/stream';
import { emptyProgress } from '../../../src/domain/pipeline-status';

describe('RecentIds', () => {
  test('reports an id as seen from its second occurrence on', () => {
    const r = new RecentIds(10);
    expect(r.seen('a')).toBe(false);
    expect(r.seen('b')).toBe(false);
    expect(r.seen('a')).toBe(true);
    expect(r.seen('a')).toBe(true);
    expect(r.seen('b')).toBe(true);
  });

  test('forgets the oldest id beyond its capacity (FIFO, not refreshed by a repeat)', () => {
    const r = new RecentIds(2);
    r.seen('a');
    r.seen('b');
    expect(r.seen('a')).toBe(true); // a repeat does not move `a` to the back
    r.seen('c'); // evicts a
    expect(r.seen('b')).toBe(true);
    expect(r.seen('c')).toBe(true);
    expect(r.seen('a')).toBe(false); // forgotten, now re-added (evicts b)
    expect(r.seen('b')).toBe(false);
  });

  test('holds at most its capacity', () => {
    const r = new RecentIds(100);
    for (let i = 0; i < 1000; i++) r.seen(String(i));
    let remembered = 0;
    // Probing adds the ids it does not know, so probe newest first: the 100 newest are remembered.
    for (let i = 999; i >= 0 && r.seen(String(i)); i--) remembered++;
    expect(remembered).toBe(100);
  });
});

describe('minuteOf', () => {
  test('floors a timestamp to the start of its minute (UTC)', () => {
    expect(minuteOf('2026-11-25T18:04:59.999Z')).toBe('2026-11-25T18:04:00.000Z');
    expect(minuteOf('2026-11-25T18:04:00.000Z')).toBe('2026-11-25T18:04:00.000Z');
    expect(minuteOf('2026-11-25T19:04:30+01:00')).toBe('2026-11-25T18:04:00.000Z');
  });

  test('an unparsable timestamp falls back to the current minute', () => {
    const before = Math.floor(Date.now() / 60_000) * 60_000;
    const m = Date.parse(minuteOf('not a date'));
    const after = Math.floor(Date.now() / 60_000) * 60_000;
    expect(m).toBeGreaterThanOrEqual(before);
    expect(m).toBeLessThanOrEqual(after);
    expect(m % 60_000).toBe(0);
  });
});

describe('resumeBackfillMinutes', () => {
  const now = Date.parse('2026-12-01T12:00:00.000Z');
  const heartbeat = (updatedAt: string, lastPostAtMs?: number) => ({
    progress: { ...emptyProgress(), updatedAt },
    ...(lastPostAtMs !== undefined ? { lastPostAtMs } : {}),
  });

  test('a first attempt asks for nothing; backfill off asks for nothing', () => {
    expect(resumeBackfillMinutes(2, 1, undefined, now)).toBe(0);
    expect(resumeBackfillMinutes(0, 3, heartbeat('2026-12-01T11:59:00.000Z', now - 90_000), now)).toBe(0);
  });

  test('from the last post heartbeated, rounded up to whole minutes, at most the cap', () => {
    expect(resumeBackfillMinutes(5, 2, heartbeat('2026-12-01T11:59:59.000Z', now - 20_000), now)).toBe(1);
    expect(resumeBackfillMinutes(5, 2, heartbeat('2026-12-01T11:59:59.000Z', now - 61_000), now)).toBe(2);
    expect(resumeBackfillMinutes(2, 2, heartbeat('2026-12-01T11:59:59.000Z', now - 600_000), now)).toBe(2);
  });

  test('a crash before the first post was heartbeated: from the last heartbeat (the attempt start)', () => {
    // The SDK throttles heartbeats: the server may only hold the first one, sent before any post.
    expect(resumeBackfillMinutes(5, 2, heartbeat('2026-12-01T11:58:30.000Z'), now)).toBe(2);
  });

  test('a retry with no heartbeat at all asks for the cap', () => {
    expect(resumeBackfillMinutes(3, 2, undefined, now)).toBe(3);
  });
});
