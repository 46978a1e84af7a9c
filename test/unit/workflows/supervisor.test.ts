/** The supervisor's pure helpers: progress totals across activity attempts and per-minute counts. */
import type { MinuteCount, StreamProgress } from '../../../src/domain/pipeline-status';
import { addProgress, mergeMinutes } from '../../../src/workflows/supervisor';

function progress(p: Partial<StreamProgress> = {}): StreamProgress {
  return {
    connected: false,
    postsReceived: 0,
    postsPublished: 0,
    malformedPublished: 0,
    duplicatesSuppressed: 0,
    reconnects: 0,
    reconnectsByReason: {},
    backpressurePauses: 0,
    ...p,
  };
}

const minute = (m: number): string => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();

describe('addProgress', () => {
  test('adds every counter and merges reconnect reasons', () => {
    const a = progress({
      postsReceived: 10,
      postsPublished: 9,
      malformedPublished: 1,
      duplicatesSuppressed: 2,
      reconnects: 3,
      reconnectsByReason: { stall: 2, 'http-503': 1 },
      backpressurePauses: 4,
    });
    const b = progress({
      postsReceived: 5,
      postsPublished: 5,
      malformedPublished: 2,
      duplicatesSuppressed: 1,
      reconnects: 2,
      reconnectsByReason: { stall: 1, dropped: 1 },
      backpressurePauses: 1,
    });
    expect(addProgress(a, b)).toEqual(
      progress({
        postsReceived: 15,
        postsPublished: 14,
        malformedPublished: 3,
        duplicatesSuppressed: 3,
        reconnects: 5,
        reconnectsByReason: { stall: 3, 'http-503': 1, dropped: 1 },
        backpressurePauses: 5,
      }),
    );
    // The inputs are not modified.
    expect(a.reconnectsByReason).toEqual({ stall: 2, 'http-503': 1 });
  });

  test('state fields come from the newer report, falling back to the older one', () => {
    const a = progress({
      connected: true,
      lastPostId: '1',
      lastPostAt: minute(1),
      lastError: 'stall',
      updatedAt: minute(2),
    });
    expect(addProgress(a, progress({ connected: false }))).toMatchObject({
      connected: false,
      lastPostId: '1',
      lastPostAt: minute(1),
      lastError: 'stall',
      updatedAt: minute(2),
    });
    expect(
      addProgress(
        a,
        progress({ connected: true, lastPostId: '2', lastPostAt: minute(3), updatedAt: minute(4) }),
      ),
    ).toMatchObject({
      connected: true,
      lastPostId: '2',
      lastPostAt: minute(3),
      lastError: 'stall',
      updatedAt: minute(4),
    });
  });

  test('the empty progress is the identity for counters', () => {
    const a = progress({ postsReceived: 3, reconnectsByReason: { stall: 1 } });
    expect(addProgress(progress(), a)).toEqual(a);
  });
});

describe('mergeMinutes', () => {
  test('adds deltas to existing minutes and inserts new ones, oldest first', () => {
    const into: MinuteCount[] = [
      { minute: minute(1), published: 10 },
      { minute: minute(3), published: 5 },
    ];
    const merged = mergeMinutes(
      into,
      [
        { minute: minute(4), published: 1 },
        { minute: minute(1), published: 2 },
        { minute: minute(2), published: 7 },
      ],
      10,
    );
    expect(merged).toEqual([
      { minute: minute(1), published: 12 },
      { minute: minute(2), published: 7 },
      { minute: minute(3), published: 5 },
      { minute: minute(4), published: 1 },
    ]);
    expect(into).toEqual([
      { minute: minute(1), published: 10 },
      { minute: minute(3), published: 5 },
    ]);
  });

  test('keeps only the newest keepMinutes minutes', () => {
    const into = Array.from({ length: 5 }, (_, i) => ({ minute: minute(i), published: 1 }));
    const merged = mergeMinutes(into, [{ minute: minute(9), published: 3 }], 3);
    expect(merged).toEqual([
      { minute: minute(3), published: 1 },
      { minute: minute(4), published: 1 },
      { minute: minute(9), published: 3 },
    ]);
  });

  test('stays bounded over many reports', () => {
    let minutes: MinuteCount[] = [];
    for (let m = 0; m < 500; m++) minutes = mergeMinutes(minutes, [{ minute: minute(m), published: m }], 180);
    expect(minutes).toHaveLength(180);
    expect(minutes[0]).toEqual({ minute: minute(320), published: 320 });
    expect(minutes.at(-1)).toEqual({ minute: minute(499), published: 499 });
  });
});
