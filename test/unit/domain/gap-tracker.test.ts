import { carriedGaps, type StreamHeartbeat } from '../../../src/activities/stream';
import { GapTracker } from '../../../src/domain/gaps';
import { emptyProgress } from '../../../src/domain/pipeline-status';

const t = (s: number) => new Date(Date.UTC(2026, 11, 3, 12, 0, s)).toISOString();

describe('GapTracker: the gaps of one stream attempt', () => {
  it('a disconnect opens a gap at the last post; the next post closes it with its created_at', () => {
    const g = new GapTracker('run/1/1');
    g.post(t(1));
    g.post(t(3));
    g.stopped('disconnect:stall', t(30));
    expect(g.open).toEqual({ start: t(3), reason: 'disconnect:stall' });
    g.stopped('disconnect:network', t(40)); // a failed reconnect does not move the start
    g.post(t(45));
    expect(g.open).toBeUndefined();
    expect(g.pending()).toEqual([{ id: 'run/1/1/1', start: t(3), end: t(45), reason: 'disconnect:stall' }]);
    g.post(t(46));
    expect(g.pending()).toHaveLength(1);
  });

  it('keeps closed gaps until a delivered report acknowledges them', () => {
    const g = new GapTracker('r');
    g.post(t(1));
    g.stopped('disconnect:closed', t(2));
    g.post(t(5));
    g.stopped('disconnect:closed', t(6));
    g.post(t(9));
    const sent = g.pending().map((x) => x.id);
    expect(sent).toEqual(['r/1', 'r/2']);
    g.stopped('disconnect:http', t(10));
    g.post(t(12));
    g.acknowledge(sent);
    expect(g.pending().map((x) => x.id)).toEqual(['r/3']);
  });

  it('before any post, a gap starts at the fallback time; the newest created_at wins when posts arrive out of order', () => {
    const g = new GapTracker('r');
    g.stopped('disconnect:http', t(0));
    g.post(t(20));
    g.post(t(15));
    expect(g.lastPostCreatedAt).toBe(t(20));
    expect(g.pending()[0]).toMatchObject({ start: t(0), end: t(20) });
  });

  it('closes the gap it was started across with its first post', () => {
    const g = new GapTracker('r', { open: { start: t(0), reason: 'paused' } });
    g.post(t(50));
    expect(g.pending()).toEqual([{ id: 'r/1', start: t(0), end: t(50), reason: 'paused' }]);
  });
});

describe('carriedGaps: what an attempt inherits', () => {
  const hb = (over: Partial<StreamHeartbeat>): StreamHeartbeat => ({ progress: emptyProgress(), ...over });

  it('a first attempt carries the supervisor gap', () => {
    expect(carriedGaps({ gap: { start: t(1), reason: 'continue-as-new' } }, undefined)).toEqual({
      open: { start: t(1), reason: 'continue-as-new' },
    });
  });

  it('a retried attempt opens a worker-restart gap at its predecessor last post and re-reports its unsent gaps', () => {
    const unsent = { id: 'x/1', start: t(1), end: t(2), reason: 'disconnect:stall' as const };
    const c = carriedGaps({}, hb({ lastPostCreatedAt: t(9), pendingGaps: [unsent] }));
    expect(c).toEqual({
      open: { start: t(9), reason: 'worker-restart' },
      closed: [unsent],
      lastPostCreatedAt: t(9),
    });
  });

  it('a retried attempt keeps the gap its predecessor had open, with its reason', () => {
    const c = carriedGaps(
      {},
      hb({ lastPostCreatedAt: t(9), openGap: { start: t(9), reason: 'disconnect:http' } }),
    );
    expect(c?.open).toEqual({ start: t(9), reason: 'disconnect:http' });
  });

  it('a predecessor that received nothing: the supervisor gap, else its connect time', () => {
    expect(carriedGaps({ gap: { start: t(1), reason: 'paused' } }, hb({}))?.open).toEqual({
      start: t(1),
      reason: 'worker-restart',
    });
    expect(carriedGaps({}, hb({ progress: { ...emptyProgress(), connectedSince: t(4) } }))?.open).toEqual({
      start: t(4),
      reason: 'worker-restart',
    });
    expect(carriedGaps({}, hb({}))?.open).toBeUndefined();
  });
});
