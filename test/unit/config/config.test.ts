import { ConfigError, loadConfig, readSettings } from '../../../src/config';
import { settings } from '../../../src/config/settings';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, () => {
      throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  test('defaults produce a complete local configuration', () => {
    const c = loadConfig({});
    expect(c.temporal.address).toBe('127.0.0.1:7233');
    expect(c.temporal.tls).toBeUndefined();
    expect(c.x.rules).toEqual([{ value: 'tesla', tag: 'tesla' }]);
    expect(c.x.baseUrl).toBe('https://api.x.com');
    expect(c.x.bearerToken).toBeUndefined();
    expect(c.x.tweetFields).toContain('note_tweet');
    expect(c.gcp.tables).toEqual({
      posts: 'posts',
      deadLetter: 'posts_dead_letter',
      loadRuns: 'load_runs',
      dqResults: 'dq_results',
      loadFences: 'load_fences',
      loadRepairs: 'load_repairs',
      deadLetterReplays: 'dead_letter_replays',
      complianceActions: 'compliance_actions',
    });
  });

  test('booleans are parsed explicitly, not with Boolean()', () => {
    expect(loadConfig({ TEMPORAL_TLS: 'false' }).temporal.tls).toBeUndefined();
    expect(loadConfig({ TEMPORAL_TLS: 'true' }).temporal.tls).toBeDefined();
    expect(problemsOf({ TEMPORAL_TLS: 'maybe' })).toEqual([
      'TEMPORAL_TLS: expected true or false, got "maybe"',
    ]);
  });

  test('an API key implies TLS', () => {
    expect(loadConfig({ TEMPORAL_API_KEY: 'k' }).temporal.tls).toBeDefined();
  });

  test('every bad value is reported with the variable name and the expected form', () => {
    const problems = problemsOf({
      TEMPORAL_ADDRESS: 'nohost',
      GCP_PROJECT_ID: 'X',
      PUBSUB_TOPIC: 'a',
      BIGQUERY_DATASET: 'bad-name',
      X_API_BASE_URL: 'ftp://x',
      X_BACKFILL_MINUTES: '6',
      PUBLISH_MAX_MESSAGES: '5000',
      LOAD_BATCH_SIZE: '-1',
      DASHBOARD_PORT: '70000',
      LOG_LEVEL: 'loud',
    });
    const vars = problems.map((p) => p.split(':')[0]);
    expect(vars.sort()).toEqual(
      [
        'TEMPORAL_ADDRESS',
        'GCP_PROJECT_ID',
        'PUBSUB_TOPIC',
        'BIGQUERY_DATASET',
        'X_API_BASE_URL',
        'X_BACKFILL_MINUTES',
        'PUBLISH_MAX_MESSAGES',
        'LOAD_BATCH_SIZE',
        'DASHBOARD_PORT',
        'LOG_LEVEL',
      ].sort(),
    );
    expect(problems).toContain('TEMPORAL_ADDRESS: expected host:port, got "nohost"');
    expect(problems).toContain('X_BACKFILL_MINUTES: expected an integer 0-5, got "6"');
  });

  test('each setting rejects a nonsense value with its own name (where it has a form to violate)', () => {
    for (const def of Object.values(settings)) {
      const bad = def.env.endsWith('_FILE') || def.form.startsWith('a ') ? '%%%\u0000' : '%%%';
      const parsed = def.schema.safeParse(bad);
      if (parsed.success) continue; // free-form strings (namespace, file paths) accept anything non-empty
      expect(() => readSettings({ [def.env]: bad })).toThrow(def.env);
    }
  });

  test('DQ_CHECKS overrides the quality checks; a bad override names the check and the setting', () => {
    expect(loadConfig({}).dq.checks).toEqual({});
    const c = loadConfig({
      DQ_CHECKS: '{"freshness":{"maxStalenessMinutes":60},"volume":{"severity":"warn"}}',
    });
    expect(c.dq.checks).toEqual({ freshness: { maxStalenessMinutes: 60 }, volume: { severity: 'warn' } });
    const [notJson] = problemsOf({ DQ_CHECKS: '{freshness' });
    expect(notJson).toMatch(/^DQ_CHECKS: expected a JSON object .*\(not JSON: /);
    const problems = problemsOf({
      DQ_CHECKS: JSON.stringify({
        freshnes: {},
        volume: { severity: 'loud', minRatio: 'half', windowMinute: 5 },
        validity: { languages: 'en' },
      }),
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^DQ_CHECKS: /);
    expect(problems[0]).toContain('unknown check "freshnes"');
    expect(problems[0]).toContain('volume.severity: expected "warn" or "fail"');
    expect(problems[0]).toContain('volume.minRatio: expected a non-negative number');
    expect(problems[0]).toContain('volume.windowMinute: unknown setting');
    expect(problems[0]).toContain('validity.languages: expected an array of strings');
  });

  test('secret values are never echoed in errors', () => {
    const problems = problemsOf({ X_BEARER_TOKEN: '   ', TEMPORAL_API_KEY_FILE: '/nope' });
    expect(problems).toEqual(['TEMPORAL_API_KEY_FILE: cannot read /nope (ENOENT)']);
  });

  test('secrets can come from mounted files', () => {
    const c = loadConfig({ X_BEARER_TOKEN_FILE: '/run/secrets/x' }, (p) =>
      p === '/run/secrets/x' ? 'tok\n' : '',
    );
    expect(c.x.bearerToken).toBe('tok');
    expect(problemsOf({ X_BEARER_TOKEN_FILE: '/missing' })).toEqual([
      'X_BEARER_TOKEN_FILE: cannot read /missing (ENOENT)',
    ]);
  });

  test('X_RULES accepts JSON and the short form, and names a bad rule', () => {
    expect(loadConfig({ X_RULES: '[{"value":"tesla lang:en","tag":"t"}]' }).x.rules).toEqual([
      { value: 'tesla lang:en', tag: 't' },
    ]);
    expect(loadConfig({ X_RULES: 'tesla#cars; spacex' }).x.rules).toEqual([
      { value: 'tesla', tag: 'cars' },
      { value: 'spacex' },
    ]);
    expect(problemsOf({ X_RULES: '[{"tag":"x"}]' })[0]).toMatch(/^X_RULES: rule 1: expected an object/);
    expect(problemsOf({ X_RULES: 'a;a' })[0]).toMatch(/^X_RULES: rule 2 .*duplicate/);
    expect(problemsOf({ X_RULES: 'x'.repeat(1100) })[0]).toMatch(/X_RULES: rule 1 .*1100 characters/);
  });

  test('mTLS needs both certificate and key', () => {
    expect(problemsOf({ TEMPORAL_TLS_CERT_PATH: '/c.pem' })).toEqual([
      'TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH: expected both or neither',
    ]);
  });
});
