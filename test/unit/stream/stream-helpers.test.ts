/** The stream activity's helpers: the duplicate-suppression window and the minute of a timestamp. */
import { RecentIds, minuteOf } from '../../../src/activities/stream';

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
