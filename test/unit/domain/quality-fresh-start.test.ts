import { DEFAULT_QUALITY_CHECKS, evaluateFreshness } from '../../../src/domain/quality';

const cfg = DEFAULT_QUALITY_CHECKS.freshness; // stale after 15 min
const asOf = '2026-12-02T14:00:00.000Z';
const empty = { rows: 0, maxIngestedAt: null, maxCreatedAt: null };

describe('freshness on a pipeline that just started', () => {
  it('is pending (ok) while the pipeline is younger than the staleness limit and has loaded nothing', () => {
    const r = evaluateFreshness(empty, asOf, cfg, '2026-12-02T13:59:30.000Z');
    expect(r.status).toBe('ok');
    expect(r.details).toMatch(/^pending: the pipeline started 0\.5 min ago/);
  });

  it('is pending when the only rows are older than this pipeline (a second demo on old data)', () => {
    const old = {
      rows: 10,
      maxIngestedAt: '2026-12-02T13:30:00.000Z',
      maxCreatedAt: '2026-12-02T13:29:59.000Z',
    };
    expect(evaluateFreshness(old, asOf, cfg, '2026-12-02T13:58:00.000Z').status).toBe('ok');
    // The same rows judged without a start time, or after the limit, are stale.
    expect(evaluateFreshness(old, asOf, cfg).status).toBe('fail');
    expect(evaluateFreshness(old, asOf, cfg, '2026-12-02T13:40:00.000Z').status).toBe('fail');
  });

  it('fails once the pipeline has had the whole staleness limit and loaded nothing', () => {
    const r = evaluateFreshness(empty, asOf, cfg, '2026-12-02T13:44:00.000Z');
    expect(r.status).toBe('fail');
    expect(r.details).toMatch(/^stale: no posts ingested/);
  });

  it('judges its own rows as usual', () => {
    const own = {
      rows: 5,
      maxIngestedAt: '2026-12-02T13:59:50.000Z',
      maxCreatedAt: '2026-12-02T13:59:49.000Z',
    };
    const r = evaluateFreshness(own, asOf, cfg, '2026-12-02T13:59:00.000Z');
    expect(r.status).toBe('ok');
    expect(r.details).toMatch(/^fresh:/);
  });
});
