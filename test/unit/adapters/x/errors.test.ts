import { ApplicationFailure } from '@temporalio/common';
import { XUsageCapError, classifyXError, isUsageCapProblem } from '../../../../src/adapters/x/errors';
import { XFailureType } from '../../../../src/domain/failure-types';

describe("X's usage-cap answers", () => {
  it('are told apart from rate limits by the problem type, title or HTTP 402', () => {
    const capped = {
      title: 'UsageCapExceeded',
      detail: 'Usage cap exceeded: Monthly product cap',
      type: 'https://api.twitter.com/2/problems/usage-capped',
    };
    expect(isUsageCapProblem(429, capped)).toBe(true);
    expect(isUsageCapProblem(429, { title: 'CreditsDepleted' })).toBe(true);
    expect(isUsageCapProblem(402, undefined)).toBe(true);
    expect(isUsageCapProblem(429, { title: 'Too Many Requests', type: 'about:blank' })).toBe(false);
    expect(isUsageCapProblem(429, { connection_issue: 'TooManyConnections' })).toBe(false);
    expect(isUsageCapProblem(503, capped)).toBe(false);
  });

  it('become a non-retryable XUsageCapped failure carrying X message', () => {
    const f = classifyXError(
      new XUsageCapError(429, 'Usage cap exceeded: Monthly product cap', 'GET /2/tweets/search/stream'),
    );
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect((f as ApplicationFailure).nonRetryable).toBe(true);
    expect((f as ApplicationFailure).type).toBe(XFailureType.usageCap);
    expect((f as ApplicationFailure).message).toMatch(/Monthly product cap/);
  });
});
