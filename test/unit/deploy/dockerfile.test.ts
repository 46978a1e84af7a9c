/**
 * Dockerfile: hadolint passes, and the image rules of issue 8 hold (glibc Node 20 base, production
 * dependencies only, the prebuilt workflow bundle, non-root, tini as PID 1, no credentials).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, run, tools } from './tools';

const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
/** Instructions with line continuations joined and comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l.length > 0 && !l.startsWith('#'));
const stages = instructions.filter((l) => /^FROM\s/i.test(l));
const finalStage = instructions.slice(instructions.lastIndexOf(stages[stages.length - 1]!));

describe('Dockerfile', () => {
  it('passes hadolint', () => {
    const result = run(tools.hadolint(), ['--no-color', 'Dockerfile']);
    expect({ code: result.code, findings: result.stdout + result.stderr }).toEqual({ code: 0, findings: '' });
  });

  it('builds on node:20 bookworm-slim (glibc: Temporal core has no Alpine support), pinned', () => {
    const arg = /^ARG NODE_IMAGE=(\S+)/m.exec(dockerfile)?.[1];
    expect(arg).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
    for (const from of stages) expect(from).toMatch(/^FROM \$\{NODE_IMAGE\} AS \w+$/);
    expect(instructions.join('\n')).not.toMatch(/alpine/i);
  });

  it('is multi-stage: compiled output and the workflow bundle, production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(instructions.join('\n')).toMatch(/npm run build/);
    expect(instructions.join('\n')).toMatch(/dist\/workflow-bundle\.js/);
    const final = finalStage.join('\n');
    expect(instructions.join('\n')).toMatch(/npm ci --omit=dev/);
    expect(final).toMatch(/COPY --from=\w+ \/app\/node_modules/);
    expect(final).toMatch(/COPY --from=\w+ \/app\/dist/);
    expect(final).not.toMatch(/COPY (\.|src|dev|scripts) /);
  });

  it('runs as a numeric non-root user with tini as PID 1 and the stream worker by default', () => {
    const user = finalStage.filter((l) => l.startsWith('USER ')).pop();
    expect(user).toMatch(/^USER [1-9]\d*(:[1-9]\d*)?$/);
    expect(finalStage).toContain('ENTRYPOINT ["/usr/bin/tini", "--"]');
    expect(finalStage).toContain('CMD ["node", "dist/src/workers/stream-worker.js"]');
    expect(finalStage.join('\n')).toMatch(/HEALTH_HOST=0\.0\.0\.0/);
  });

  it('bakes in no credentials', () => {
    for (const line of instructions) {
      expect(line).not.toMatch(
        /GOOGLE_APPLICATION_CREDENTIALS|X_BEARER_TOKEN|TEMPORAL_API_KEY|TEMPORAL_TLS_KEY/,
      );
      if (/^(COPY|ADD)\s/.test(line)) {
        expect(line).not.toMatch(/\.(pem|key|p12)\b|credentials|service-account|-key\.json|\.env\b/);
      }
    }
    const ignore = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8');
    for (const pattern of ['**/.env', '**/*.pem', '**/*.key', '**/node_modules'])
      expect(ignore).toContain(pattern);
  });
});
