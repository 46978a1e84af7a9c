import { addReads, budgetLevel, budgetStatus, emptyUsage, nextMonthStart } from '../../../src/domain/budget';

const at = (iso: string) => Date.parse(iso);

describe('the read budget', () => {
  it('counts posts read per UTC day and per month, and rolls both over', () => {
    let u = emptyUsage(at('2026-11-30T23:59:00Z'));
    u = addReads(u, 10, at('2026-11-30T23:59:30Z'));
    u = addReads(u, 5, at('2026-11-30T23:59:59Z'), true);
    expect(u).toMatchObject({
      day: '2026-11-30',
      dayPosts: 15,
      month: '2026-11',
      monthPosts: 15,
      monthSearchPosts: 5,
    });
    u = addReads(u, 3, at('2026-12-01T00:00:01Z'));
    expect(u).toMatchObject({
      day: '2026-12-01',
      dayPosts: 3,
      month: '2026-12',
      monthPosts: 3,
      monthSearchPosts: 0,
    });
    u = addReads(u, 4, at('2026-12-02T08:00:00Z'));
    expect(u).toMatchObject({ day: '2026-12-02', dayPosts: 4, monthPosts: 7 });
  });

  it('warns at 80 % and is exhausted at 100 %; no budget means no limit', () => {
    const u = (n: number) => addReads(emptyUsage(0), n, 0);
    const b = { monthlyPosts: 1000, costPerPostUsd: 0.005 };
    expect(budgetLevel(u(799), b)).toBe('ok');
    expect(budgetLevel(u(800), b)).toBe('warn');
    expect(budgetLevel(u(1000), b)).toBe('exhausted');
    expect(budgetLevel(u(1e9), { costPerPostUsd: 0.005 })).toBe('ok');
  });

  it('estimates the cost from the count and the price per post', () => {
    const s = budgetStatus(addReads(emptyUsage(0), 1701, 0), { monthlyPosts: 2000, costPerPostUsd: 0.005 });
    expect(s).toMatchObject({
      estimatedCostTodayUsd: 8.51,
      estimatedCostMonthUsd: 8.51,
      level: 'warn',
      monthlyPosts: 2000,
    });
  });

  it('knows when the next billing month starts (UTC), across a year end', () => {
    expect(new Date(nextMonthStart(at('2026-12-31T23:00:00Z'))).toISOString()).toBe(
      '2027-01-01T00:00:00.000Z',
    );
    expect(new Date(nextMonthStart(at('2026-02-10T00:00:00Z'))).toISOString()).toBe(
      '2026-03-01T00:00:00.000Z',
    );
  });
});
