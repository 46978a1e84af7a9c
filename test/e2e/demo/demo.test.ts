/**
 * `npm run demo` as a new user runs it, on a private stack (its own `.local/`-like folder and ports,
 * so the suite's stack is not disturbed): three runs in a row on the same state, each stopped with
 * SIGINT; every worker SIGKILLed once during the second; a database the emulator cannot open; a
 * stack that cannot start. Each run must load posts, keep the earlier rows and leave no process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { groupAlive } from '../../../dev/stack/process-group';

const ROOT = resolve(__dirname, '../../..');
const stackDir = mkdtempSync(join(tmpdir(), 'demo-e2e-'));
/**
 * Below Linux's ephemeral range (32768-60999): a port in it can be the local end of any outgoing
 * connection the suite holds open, and then no server can bind it (seen: the BigQuery emulator exiting
 * at start-up three times in a row).
 */
const PORTS = {
  temporal: 24233,
  temporalUi: 24234,
  pubsub: 24185,
  bigquery: 24550,
  bigqueryGrpc: 24560,
  standin: 24787,
  dashboard: 24080,
  streamHealth: 24464,
  batchHealth: 24465,
};
const ENV: NodeJS.ProcessEnv = {
  ...process.env,
  STACK_DIR: stackDir,
  TEMPORAL_ADDRESS: `127.0.0.1:${PORTS.temporal}`,
  TEMPORAL_UI_PORT: String(PORTS.temporalUi),
  TEMPORAL_UI_URL: `http://127.0.0.1:${PORTS.temporalUi}`,
  PUBSUB_EMULATOR_HOST: `127.0.0.1:${PORTS.pubsub}`,
  BIGQUERY_EMULATOR_HOST: `http://127.0.0.1:${PORTS.bigquery}`,
  BIGQUERY_EMULATOR_GRPC_PORT: String(PORTS.bigqueryGrpc),
  X_STANDIN_PORT: String(PORTS.standin),
  DASHBOARD_PORT: String(PORTS.dashboard),
  STREAM_WORKER_HEALTH_PORT: String(PORTS.streamHealth),
  BATCH_WORKER_HEALTH_PORT: String(PORTS.batchHealth),
  DEMO_RATE: '20',
  GCP_PROJECT_ID: 'demo-e2e',
};
for (const k of ['X_BEARER_TOKEN', 'X_BEARER_TOKEN_FILE', 'X_API_BASE_URL']) delete ENV[k];

/**
 * Rows in the demo's `posts`, asked over the emulator's REST API: the BigQuery client library
 * prefers `BIGQUERY_EMULATOR_HOST` from this process's environment (the suite's own emulator).
 */
async function postsCount(): Promise<number> {
  const res = await fetch(`${ENV.BIGQUERY_EMULATOR_HOST}/bigquery/v2/projects/demo-e2e/queries`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      query: 'SELECT COUNT(*) AS n FROM `demo-e2e.x_stream.posts`',
      useLegacySql: false,
    }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json()) as { rows?: { f: { v: string }[] }[]; error?: { message?: string } };
  if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  return Number(body.rows?.[0]?.f[0]?.v ?? 0);
}

/** Whether any process of the group `pid` leads is alive (every process the demo starts leads its group). */
const alive = groupAlive;

const killGroup = (pid: number) => {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
};

/** After a failed step: SIGKILL whatever the demo left and wait until it is gone (ports, files). */
async function cleanUp(demo: Demo): Promise<void> {
  if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
  for (const pid of demo.pids()) killGroup(pid);
  await until(
    'the killed processes to be gone',
    () => demo.pids().every((p) => !alive(p)) || undefined,
    30_000,
  );
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const v = await Promise.resolve(probe()).catch((err: unknown) => {
      last = `; last error: ${String((err as Error)?.message ?? err).split('\n')[0]}`;
      return undefined;
    });
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One `npm run demo` process (started as npm starts it, minus npm), its output and every pid it named. */
class Demo {
  readonly child: ChildProcess;
  out = '';
  err = '';
  readonly exited: Promise<number | null>;

  constructor(env: NodeJS.ProcessEnv = ENV) {
    this.child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'dev/demo.ts')], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.out += d.toString();
      if (process.env.DEMO_E2E_VERBOSE) process.stderr.write(d);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  line(re: RegExp): RegExpMatchArray | undefined {
    return this.out.split('\n').reduce<RegExpMatchArray | undefined>((m, l) => re.exec(l) ?? m, undefined);
  }

  waitFor(re: RegExp, timeoutMs = 120_000): Promise<RegExpMatchArray> {
    return until(`demo output ${re}`, () => this.line(re), timeoutMs);
  }

  /** The end of what it printed, for a failure message. */
  tail(): string {
    return `--- demo stdout (end) ---\n${this.out.split('\n').slice(-25).join('\n')}\n--- stderr ---\n${this.err.slice(-2000)}`;
  }

  /** Every pid the demo reported starting (stack components, workers, restarted workers). */
  pids(): number[] {
    return [...this.out.matchAll(/\(pid (\d+)/g)].map((m) => Number(m[1]));
  }

  async stop(): Promise<number | null> {
    this.child.kill('SIGINT');
    return this.exited;
  }
}

const RUN_MS = 60_000;

async function oneRun(before: number, during?: (demo: Demo) => Promise<void>) {
  const demo = new Demo();
  try {
    await demo.waitFor(/== pipeline running/);
    const t0 = Date.now();
    expect(demo.out).not.toMatch(/status unavailable/);
    await during?.(demo);
    // Posts flow into BigQuery on top of what earlier runs left, for at least a minute.
    await until(
      'new posts in BigQuery',
      async () => (await postsCount()) > before + 100 || undefined,
      120_000,
    );
    const wait = RUN_MS - (Date.now() - t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const loaded = await postsCount();
    expect(loaded).toBeGreaterThan(before);
    expect(demo.out).not.toMatch(/quality fail/);
    expect(await demo.stop()).toBe(0);
    expect(demo.out).toMatch(/== BigQuery emulator: peak resident memory \d+ MiB, restarts 0/);
    expect(demo.out).toMatch(/== stopped/);
    // The Pub/Sub emulator forgets its messages when it stops: the demo drained them first.
    expect(demo.out).toMatch(/stream paused and subscription drained: \d+ rows loaded/);
    const left = demo.pids().filter(alive);
    expect(left).toEqual([]);
    return { loaded, demo };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${demo.tail()}`, { cause: err });
  } finally {
    await cleanUp(demo);
  }
}

describe('npm run demo', () => {
  let rows = 0;
  afterAll(() => rmSync(stackDir, { recursive: true, force: true }));

  it('loads posts on a fresh clone and stops cleanly on SIGINT', async () => {
    const r = await oneRun(0);
    rows = r.loaded;
    expect(r.demo.out).toMatch(/starting bigquery/);
  }, 300_000);

  it('runs again on the same state, keeps the rows, and brings back each worker SIGKILLed', async () => {
    const r = await oneRun(rows, async (demo) => {
      for (const name of ['stream worker', 'batch worker']) {
        const pid = Number(demo.line(new RegExp(`${name} started \\(pid (\\d+)`))![1]);
        process.kill(pid, 'SIGKILL');
        const back = await demo.waitFor(new RegExp(`${name} restarted \\(pid (\\d+)`), 60_000);
        expect(Number(back[1])).not.toBe(pid);
        expect(demo.out).toMatch(
          new RegExp(`!! ${name} \\(pid ${pid}\\) exited \\(SIGKILL\\); restarting it in 1 s`),
        );
      }
      // Loading resumes after both restarts.
      const after = await postsCount();
      await until(
        'posts loaded after the restarts',
        async () => (await postsCount()) > after || undefined,
        90_000,
      );
    });
    expect(r.loaded).toBeGreaterThan(rows);
    rows = r.loaded;
  }, 360_000);

  it('runs a third time on the same state and keeps the earlier rows', async () => {
    const r = await oneRun(rows);
    expect(r.loaded).toBeGreaterThan(rows);
    rows = r.loaded;
  }, 300_000);

  it('moves aside an emulator database it cannot open and starts on a fresh one', async () => {
    writeFileSync(join(stackDir, 'bigquery.db'), Buffer.alloc(64 * 1024, 0x5a));
    const demo = new Demo();
    try {
      const moved = await demo.waitFor(
        /BigQuery emulator: .*moved it to .*bigquery\.db\.unreadable-.* and started on a fresh database/,
      );
      expect(moved[0]).not.toMatch(/\n/);
      await demo.waitFor(/== pipeline running/);
      expect(await demo.stop()).toBe(0);
      expect(demo.pids().filter(alive)).toEqual([]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${demo.tail()}`, { cause: err });
    } finally {
      await cleanUp(demo);
    }
  }, 300_000);

  it('exits non-zero with a one-line cause and leaves nothing running when the stack cannot start', async () => {
    // Something that is not a Pub/Sub emulator holds its port.
    const squatter: Server = createServer((s) => s.destroy());
    await new Promise<void>((r) => squatter.listen(PORTS.pubsub, '127.0.0.1', r));
    const demo = new Demo();
    try {
      expect(await demo.exited).toBe(1);
      const lines = demo.err.trim().split('\n');
      expect(lines).toEqual([expect.stringMatching(/^demo failed: pubsub: port 24185 is already in use/)]);
      expect(demo.pids().length).toBeGreaterThan(0); // it had started the other components
      expect(demo.pids().filter(alive)).toEqual([]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${demo.tail()}`, { cause: err });
    } finally {
      squatter.close();
      await cleanUp(demo);
    }
  }, 180_000);
});
