/**
 * docker-compose.yml: valid for Debian's docker-compose (`config -q`), the same environment names as
 * src/config/settings.ts, pinned images, loopback-only ports, health checks and start-up ordering.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { settings } from '../../../src/config/settings';
import { isPinnedImage, repoRoot, run, settingsByEnv, tools } from './tools';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string | number | null> | string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] | string };
  restart?: string;
  stop_grace_period?: string;
  volumes?: string[];
}

interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/**
 * Environment names that are not app settings: the configuration of third-party images.
 */
const nonAppEnv = new Set([
  // postgres image
  'POSTGRES_USER',
  'POSTGRES_PASSWORD',
  'PGDATA',
  // temporalio/server image (config template) and temporalio/admin-tools (temporal-sql-tool)
  'DB',
  'DB_PORT',
  'POSTGRES_SEEDS',
  'POSTGRES_PWD',
  'BIND_ON_IP',
  'SQL_PASSWORD',
  // temporalio/ui image
  'TEMPORAL_DEFAULT_NAMESPACE',
  // Node's own
  'NODE_OPTIONS',
  // Google client libraries (never set here: no key files; listed so a user override is explained)
  'GOOGLE_APPLICATION_CREDENTIALS',
]);

const appImage = 'x-stream-pipeline:';
const composePath = path.join(repoRoot, 'docker-compose.yml');
const compose = parse(readFileSync(composePath, 'utf8'), { merge: true }) as ComposeFile;
const services = Object.entries(compose.services);
const appServices = services.filter(([, s]) => s.image?.startsWith(appImage));

function envNames(s: Service): string[] {
  if (!s.environment) return [];
  if (Array.isArray(s.environment)) return s.environment.map((e) => e.split('=')[0]!);
  return Object.keys(s.environment);
}

function envOf(s: Service): Record<string, string | number | null> {
  return Array.isArray(s.environment) ? {} : (s.environment ?? {});
}

/** The value compose uses when the user's shell sets nothing: `${VAR:-default}` -> default. */
function withDefaults(value: string): string {
  return value
    .replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}/g, (_m, def: string | undefined) => def ?? '')
    .replace(/\$\$/g, '$');
}

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!m) throw new Error(`unsupported duration ${duration}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] as 'ms' | 's' | 'm'];
}

describe('docker-compose.yml', () => {
  it('passes `docker-compose config -q`', () => {
    const result = run(tools.dockerCompose(), ['-f', 'docker-compose.yml', 'config', '-q']);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('runs the whole stack', () => {
    const commands = appServices.map(([, s]) => (Array.isArray(s.command) ? s.command.join(' ') : s.command));
    expect(commands).toEqual(
      expect.arrayContaining([
        'node dist/src/workers/setup.js',
        'node dist/src/workers/stream-worker.js',
        'node dist/src/workers/batch-worker.js',
        'node dist/src/dashboard/main.js',
        expect.stringMatching(/^node dist\/dev\/x-api-standin\/main\.js/),
      ]),
    );
    const images = services.map(([, s]) => s.image ?? '');
    for (const prefix of [
      'temporalio/server:',
      'temporalio/ui:',
      'temporalio/admin-tools:',
      'postgres:',
      'gcr.io/google.com/cloudsdktool/google-cloud-cli:',
      'ghcr.io/goccy/bigquery-emulator:',
    ]) {
      expect(images.some((i) => i.startsWith(prefix))).toBe(true);
    }
  });

  it('uses only settings from src/config/settings.ts (or allow-listed image settings) as env names', () => {
    for (const [name, s] of services) {
      for (const env of envNames(s)) {
        expect(`${name}: ${env} known=${settingsByEnv.has(env) || nonAppEnv.has(env)}`).toBe(
          `${name}: ${env} known=true`,
        );
      }
    }
  });

  it('gives the app values its config module accepts and never a secret value', () => {
    for (const [name, s] of appServices) {
      for (const [env, value] of Object.entries(envOf(s))) {
        const setting = settingsByEnv.get(env)!;
        if (value === null) continue; // passed through from the user's shell
        if (setting.secret) throw new Error(`${name}: ${env} has a literal value in docker-compose.yml`);
        const parsed = setting.schema.safeParse(withDefaults(String(value)));
        expect(`${name}: ${env}=${value} ${parsed.success ? 'ok' : parsed.error.issues[0]?.message}`).toBe(
          `${name}: ${env}=${value} ok`,
        );
      }
      expect(envOf(s)[settings.healthHost.env]).toBe('0.0.0.0');
    }
  });

  it('pins every image by version (no :latest)', () => {
    for (const [name, s] of services) {
      expect({ name, image: s.image, pinned: isPinnedImage(s.image ?? '') }).toEqual({
        name,
        image: s.image,
        pinned: true,
      });
    }
    for (const [, s] of appServices) expect(s.build).toBeDefined();
  });

  it('publishes ports on 127.0.0.1 only', () => {
    for (const [name, s] of services) {
      for (const port of s.ports ?? []) expect(`${name} ${port}`).toMatch(/^\S+ 127\.0\.0\.1:\d+:\d+$/);
    }
  });

  it('orders start-up with health checks and completed one-shots', () => {
    for (const [name, s] of services) {
      const deps = s.depends_on ?? {};
      expect({ name, longSyntax: !Array.isArray(deps) }).toEqual({ name, longSyntax: true });
      for (const [dep, { condition }] of Object.entries(deps as Record<string, { condition: string }>)) {
        const target = compose.services[dep];
        expect(target).toBeDefined();
        if (condition === 'service_healthy')
          expect({ dep, healthcheck: !!target!.healthcheck }).toEqual({ dep, healthcheck: true });
        else
          expect({ dep, condition, restart: target!.restart }).toEqual({
            dep,
            condition: 'service_completed_successfully',
            restart: 'no',
          });
      }
    }
    // Every long-running dependency of the pipeline reports its health.
    for (const name of [
      'postgresql',
      'temporal',
      'pubsub-emulator',
      'bigquery-emulator',
      'x-standin',
      'stream-worker',
      'batch-worker',
      'dashboard',
    ]) {
      expect({ name, healthcheck: !!compose.services[name]?.healthcheck }).toEqual({
        name,
        healthcheck: true,
      });
    }
    const deps = (name: string) => Object.keys(compose.services[name]!.depends_on ?? {});
    expect(deps('setup')).toEqual(expect.arrayContaining(['pubsub-emulator', 'bigquery-emulator']));
    for (const worker of ['stream-worker', 'batch-worker', 'dashboard']) {
      expect(deps(worker)).toEqual(expect.arrayContaining(['setup', 'temporal-init']));
    }
  });

  it('keeps data in named volumes', () => {
    const declared = Object.keys(compose.volumes ?? {});
    expect(declared.length).toBeGreaterThan(0);
    for (const [name, s] of services) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0]!;
        expect({ name, source, named: declared.includes(source) }).toEqual({ name, source, named: true });
      }
    }
  });

  it('gives the workers a stop grace period longer than WORKER_SHUTDOWN_GRACE_MS', () => {
    for (const name of ['stream-worker', 'batch-worker']) {
      const s = compose.services[name]!;
      const graceMs = Number(
        envOf(s)[settings.workerShutdownGraceMs.env] ?? settings.workerShutdownGraceMs.default,
      );
      expect(seconds(s.stop_grace_period ?? '10s')).toBeGreaterThan(graceMs / 1000);
    }
  });

  it('registers the search attributes the workflows use', () => {
    const init = JSON.stringify(compose.services['temporal-init']!.command);
    for (const sa of [
      'PipelineState=Keyword',
      'DataQuality=Keyword',
      'XRuleTags=KeywordList',
      'StreamName=Keyword',
    ]) {
      expect(init).toContain(sa);
    }
  });
});
