/**
 * `npm run bench:reader-peers [-- --posts 30000 --runs 5 --max-chunk 65536 --seed 42]`
 *
 * Our stream reader beside the two readers a user would otherwise use, on one randomly chunked
 * byte stream served over loopback HTTP, against the `JSON.parse` ceiling (issue #13).
 *
 * The body: posts from the stand-in's corpus (English, Spanish, German, Korean, Japanese, emoji:
 * multi-byte UTF-8 throughout), `\r\n` endings, a keep-alive `\r\n` after about 1 % of posts. A
 * loopback server (127.0.0.1, port 0, in a worker thread so that it runs beside the reader rather
 * than in its event loop) answers `/2/tweets/search/stream` with that body as a chunked response,
 * one `write` per planned chunk: sizes from a seeded RNG, 1 B to `--max-chunk` (skewed small), the
 * same plan on every connection, and after about 1 write in 16 a flush pause (the server yields its
 * event loop so the client reads what was sent, giving short reads too). Some planned cuts fall
 * inside a character; reads by the client add more cuts of their own.
 *
 * Readers, each run in turn (interleaved), every run a fresh connection:
 * - `JSON.parse` ceiling: `JSON.parse` of every line, pre-split strings, in process, no I/O;
 * - UTF-8 decode + `JSON.parse` of pre-split byte lines, in process: the least work any reader of
 *   bytes must do (Node 20's UTF-8 decoder is most of the gap to the ceiling);
 * - ours, in memory: `LineDecoder` + `JSON.parse` over the server's chunk plan, no I/O;
 * - ours over HTTP: `LineDecoder` + `JSON.parse` on `http.get`'s chunks (the same work as the
 *   peers: bytes in, parsed objects out);
 * - ours, the connection (`connectOnce` in `stream-connection.ts`, what the stream worker runs):
 *   framing, back-pressure queue, `classifyStreamLine`, normalisation into a `Post`;
 * - `twitter-api-v2` `TweetStream` (`v2.searchStream()`, then `connect()`; base URL moved to the
 *   loopback server by a subclass setting the client's prefix, plain-HTTP agent), counting `data`;
 * - tweepy `StreamingClient` (`dev/bench/tweepy_reader.py` in the venv of
 *   `dev/tools/install-bench-python.sh`; reported as not available when that cannot be had).
 *
 * Per reader: posts/s and MB/s (body bytes over the time from the request to the last post
 * handed over), the median of `--runs` runs; posts lost (ids sent but never received) and posts
 * with corrupt text (full text, `note_tweet.text` when present, differs from what was sent, e.g.
 * U+FFFD from a character cut between chunks), the worst run. Target: ours over HTTP ≥ 0.8 of the
 * ceiling, with no post lost or corrupt where a peer loses or corrupts some.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { ETwitterStreamEvent, TwitterApi, TwitterApiv2 } from 'twitter-api-v2';
import { connectOnce } from '../../src/adapters/x/stream-connection';
import type { XStreamStats } from '../../src/adapters/x/stream-source';
import { LineDecoder } from '../../src/adapters/x/stream-reader';
import { createLogger } from '../../src/observability/logger';
import { rng } from '../x-api-standin/corpus';
import { corpusLines } from './corpus-lines';

const ROOT = join(__dirname, '..', '..');
const STREAM_PATH = '/2/tweets/search/stream';
const TARGET_RATIO = 0.8;

export interface ReaderPeersOptions {
  /** Posts in the body. @default 30000 */
  posts?: number;
  /** Interleaved runs; figures are medians. @default 5 */
  runs?: number;
  /** Largest server write, bytes. @default 65536 */
  maxChunk?: number;
  /** Seeds the corpus, the keep-alives and the chunk plan. @default 42 */
  seed?: number;
  /** Run `dev/tools/install-bench-python.sh` when the tweepy venv is missing. @default true */
  installPython?: boolean;
  /** Progress lines. @default silent */
  log?: (line: string) => void;
}

export interface ReaderFigure {
  id:
    | 'ceiling'
    | 'decode-floor'
    | 'ours-memory'
    | 'transport'
    | 'ours-http'
    | 'ours-connection'
    | 'twitter-api-v2'
    | 'tweepy';
  label: string;
  where: 'in process' | 'loopback HTTP';
  available: boolean;
  /** Why the reader could not run (`available: false`). */
  reason?: string;
  /** Medians. */
  postsPerSec?: number;
  mbPerSec?: number;
  /** postsPerSec / the ceiling's. */
  ofCeiling?: number;
  /** Whether posts are counted (not for the bytes-only transport figure). */
  counts: boolean;
  /** Per run. */
  seconds: number[];
  lost: number[];
  corrupt: number[];
  /** Lines the reader could not parse, per run (each is at least one lost post). */
  parseErrors: number[];
  /** Anything that ended a run early, per run. */
  errors: string[];
}

export interface ReaderPeersResult {
  machine: { cpus: number; cpuModel: string; node: string; tweepy?: string };
  settings: { posts: number; runs: number; maxChunk: number; seed: number; aggregate: 'median' };
  body: {
    posts: number;
    bytes: number;
    nonAsciiByteShare: number;
    keepAlives: number;
    serverWrites: number;
    flushPauses: number;
    /** Planned writes that end inside a multi-byte character. */
    cutsInsideCharacter: number;
  };
  readers: ReaderFigure[];
  target: {
    ratio: number;
    /** ours over HTTP / the ceiling ≥ 0.8 */
    met: boolean;
    /** ours lost and corrupted nothing in any run. */
    oursCorrect: boolean;
    /** Peers that lost or corrupted posts in some run. */
    peersIncorrect: string[];
  };
}

// ---- the body ---------------------------------------------------------------------------------

interface Body {
  lines: string[];
  byteLines: Buffer[];
  bytes: Buffer;
  /** id → full text (`note_tweet.text` when present, else `text`). */
  expected: Map<string, string>;
  keepAlives: number;
  sizes: Uint32Array;
  flush: Uint8Array;
  cutsInsideCharacter: number;
  nonAsciiBytes: number;
}

interface SourceLine {
  data: { id: string; text: string; note_tweet?: { text?: string } };
}

const fullText = (d: SourceLine['data']): string => d.note_tweet?.text ?? d.text;

function buildBody(posts: number, seed: number, maxChunk: number): Body {
  const lines = corpusLines(posts, seed);
  const expected = new Map<string, string>();
  for (const l of lines) {
    const d = (JSON.parse(l) as SourceLine).data;
    expected.set(d.id, fullText(d));
  }
  const r = rng(seed);
  const parts: string[] = [];
  let keepAlives = 0;
  for (const line of lines) {
    parts.push(line, '\r\n');
    if (r() < 0.01) {
      parts.push('\r\n');
      keepAlives++;
    }
  }
  const bytes = Buffer.from(parts.join(''), 'utf8');
  const sizes: number[] = [];
  const flush: number[] = [];
  let cutsInsideCharacter = 0;
  for (let off = 0; off < bytes.length;) {
    const size = 1 + Math.floor(r() ** 2 * maxChunk);
    sizes.push(size);
    flush.push(r() < 1 / 16 ? 1 : 0);
    off += size;
    if (off < bytes.length && (bytes[off]! & 0xc0) === 0x80) cutsInsideCharacter++;
  }
  let nonAsciiBytes = 0;
  for (const b of bytes) if (b >= 0x80) nonAsciiBytes++;
  return {
    lines,
    byteLines: lines.map((l) => Buffer.from(l, 'utf8')),
    bytes,
    expected,
    keepAlives,
    sizes: Uint32Array.from(sizes),
    flush: Uint8Array.from(flush),
    cutsInsideCharacter,
    nonAsciiBytes,
  };
}

// ---- the loopback server (a worker thread) ----------------------------------------------------

const SERVER_JS = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const body = Buffer.from(workerData.body);
const { sizes, flush, path } = workerData;
const drained = (res) => new Promise((r) => {
  const done = () => { res.off('drain', done); res.off('close', done); r(); };
  res.on('drain', done);
  res.on('close', done);
});
const server = http.createServer(async (req, res) => {
  if (!req.url.startsWith(path)) { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
  let off = 0;
  for (let i = 0; i < sizes.length && off < body.length; i++) {
    const end = Math.min(body.length, off + sizes[i]);
    const ok = res.write(body.subarray(off, end));
    off = end;
    if (!ok) await drained(res);
    else if (flush[i]) await new Promise((r) => setImmediate(r));
    if (res.destroyed) return;
  }
  res.end();
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

interface Server {
  baseUrl: string;
  close(): Promise<void>;
}

async function startServer(body: Body): Promise<Server> {
  const shared = new SharedArrayBuffer(body.bytes.length);
  body.bytes.copy(Buffer.from(shared));
  const worker = new Worker(SERVER_JS, {
    eval: true,
    workerData: { body: shared, sizes: body.sizes, flush: body.flush, path: STREAM_PATH },
  });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', (p: number) => resolve(p));
    worker.once('error', reject);
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: async () => {
      await worker.terminate();
    },
  };
}

// ---- the readers ------------------------------------------------------------------------------

interface Run {
  seconds: number;
  /** [id, full text] per post received, in order. */
  received: [string, string][];
  parseErrors: number;
  error?: string;
}

function inProcess(fn: (push: (id: string, text: string) => void) => number): Run {
  const received: [string, string][] = [];
  const t = performance.now();
  const parseErrors = fn((id, text) => received.push([id, text]));
  return { seconds: (performance.now() - t) / 1000, received, parseErrors };
}

function ceiling(body: Body): Run {
  return inProcess((push) => {
    for (const line of body.lines) {
      const d = (JSON.parse(line) as SourceLine).data;
      push(d.id, fullText(d));
    }
    return 0;
  });
}

function decodeFloor(body: Body): Run {
  return inProcess((push) => {
    for (const b of body.byteLines) {
      const d = (JSON.parse(b.toString('utf8')) as SourceLine).data;
      push(d.id, fullText(d));
    }
    return 0;
  });
}

/** `LineDecoder` + `JSON.parse` of each line; returns the parse errors. */
function parseLines(
  lines: readonly string[],
  push: (id: string, text: string) => void,
  errors: { n: number },
): void {
  for (const line of lines) {
    try {
      const d = (JSON.parse(line) as Partial<SourceLine>).data;
      if (d) push(d.id, fullText(d));
    } catch {
      errors.n++;
    }
  }
}

function oursInMemory(body: Body): Run {
  return inProcess((push) => {
    const d = new LineDecoder();
    const errors = { n: 0 };
    let off = 0;
    for (let i = 0; off < body.bytes.length; i++) {
      const end = Math.min(body.bytes.length, off + body.sizes[i]!);
      parseLines(d.push(body.bytes.subarray(off, end)), push, errors);
      off = end;
    }
    const rest = d.end();
    if (rest !== undefined) parseLines([rest], push, errors);
    return errors.n;
  });
}

/** The transport alone: `http.get` counting bytes, no reader (what HTTP costs the others). */
function transport(baseUrl: string): Promise<Run> {
  return new Promise((resolve) => {
    const t = performance.now();
    let bytes = 0;
    const done = (error?: string): void =>
      resolve({ seconds: (performance.now() - t) / 1000, received: [], parseErrors: 0, error });
    const req = http.get(`${baseUrl}${STREAM_PATH}`, { agent: false }, (res) => {
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => done(bytes > 0 ? undefined : 'no bytes'));
      res.on('error', (e) => done(e.message));
    });
    req.on('error', (e) => done(e.message));
  });
}

function oursOverHttp(baseUrl: string): Promise<Run> {
  return new Promise((resolve) => {
    const received: [string, string][] = [];
    const push = (id: string, text: string): void => void received.push([id, text]);
    const errors = { n: 0 };
    const t = performance.now();
    const done = (error?: string): void =>
      resolve({ seconds: (performance.now() - t) / 1000, received, parseErrors: errors.n, error });
    const req = http.get(`${baseUrl}${STREAM_PATH}`, { agent: false }, (res) => {
      const d = new LineDecoder();
      res.on('data', (chunk: Buffer) => parseLines(d.push(chunk), push, errors));
      res.on('end', () => {
        const rest = d.end();
        if (rest !== undefined) parseLines([rest], push, errors);
        done();
      });
      res.on('error', (e) => done(e.message));
    });
    req.on('error', (e) => done(e.message));
  });
}

async function oursConnection(baseUrl: string): Promise<Run> {
  const received: [string, string][] = [];
  let malformed = 0;
  const stats: XStreamStats = {
    connected: false,
    connects: 0,
    reconnects: 0,
    reconnectsByReason: {},
    keepAlives: 0,
    linesReceived: 0,
    posts: 0,
    malformed: 0,
    bytesReceived: 0,
    linesDroppedAtClose: 0,
  };
  const t = performance.now();
  const outcome = await connectOnce({
    url: new URL(`${baseUrl}${STREAM_PATH}`),
    bearerToken: 'bench-token',
    stallTimeoutMs: 20_000,
    closeDrainMs: 0,
    attempt: 1,
    backfillMinutes: 0,
    signal: new AbortController().signal,
    onMessage: (m) => {
      if (m.kind === 'post') received.push([m.post.id, m.post.text]);
      else malformed++;
    },
    now: Date.now,
    log: createLogger({ level: 'silent', format: 'json' }),
    stats,
    onBytes: () => undefined,
  });
  const seconds = (performance.now() - t) / 1000;
  // The server ending the response is the expected end ('closed'); anything else is reported.
  const ok = outcome.kind === 'failed' && outcome.reason === 'closed';
  return {
    seconds,
    received,
    parseErrors: malformed,
    error: ok ? undefined : JSON.stringify(outcome),
  };
}

/** twitter-api-v2's v2 client with its URL prefix moved to the loopback server. */
class LoopbackTwitterApiv2 extends TwitterApiv2 {
  constructor(baseUrl: string) {
    // https.request accepts an http: URL when the agent is a plain-HTTP one.
    super(new TwitterApi('bench-token', { httpAgent: new http.Agent({ keepAlive: false }) }));
    this._prefix = `${baseUrl}/2/`;
  }
}

async function twitterApiV2(baseUrl: string): Promise<Run> {
  const received: [string, string][] = [];
  let parseErrors = 0;
  const stream = new LoopbackTwitterApiv2(baseUrl).searchStream({ autoConnect: false });
  const t = performance.now();
  let error: string | undefined;
  const closed = new Promise<void>((resolve) => {
    stream.on(ETwitterStreamEvent.Data, (payload: Partial<SourceLine>) => {
      if (payload.data) received.push([payload.data.id, fullText(payload.data)]);
    });
    stream.on(ETwitterStreamEvent.TweetParseError, () => parseErrors++);
    stream.on(ETwitterStreamEvent.Error, () => undefined); // counted above; a close is the end
    stream.on(ETwitterStreamEvent.ConnectionClosed, () => resolve());
  });
  try {
    await stream.connect({ autoReconnect: false, keepAliveTimeout: 'disable' });
    await closed;
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    stream.destroy();
  }
  return { seconds: (performance.now() - t) / 1000, received, parseErrors, error };
}

interface Tweepy {
  python: string;
  version: string;
  expectedFile: string;
}

interface TweepyOutput {
  received: number;
  distinct: number;
  lost: number;
  corrupt: number;
  seconds: number;
  error: string | null;
}

function tweepyRun(tw: Tweepy, baseUrl: string): Promise<{ out?: TweepyOutput; error?: string }> {
  return new Promise((resolve) => {
    const p = spawn(
      tw.python,
      [join(ROOT, 'dev/bench/tweepy_reader.py'), '--base-url', baseUrl, '--expected', tw.expectedFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    p.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    const timer = setTimeout(() => p.kill('SIGKILL'), 180_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve({ out: JSON.parse(out) as TweepyOutput });
      } catch {
        resolve({ error: `exit ${code}: ${(err || out).trim().split('\n').slice(-1)[0] ?? ''}` });
      }
    });
    p.on('error', (e) => resolve({ error: e.message }));
  });
}

/** The venv's python with tweepy, installing it when missing; or why it is not available. */
function findTweepy(
  install: boolean,
  log: (l: string) => void,
): { python: string; version: string } | string {
  const python = join(ROOT, '.local/bench-venv/bin/python');
  const version = (): string | undefined => {
    const r = spawnSync(python, ['-c', 'import tweepy; print(tweepy.__version__)'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  if (existsSync(python) && version()) return { python, version: version()! };
  if (!install) return 'tweepy venv missing: run dev/tools/install-bench-python.sh';
  log('installing tweepy (dev/tools/install-bench-python.sh)');
  const r = spawnSync('bash', [join(ROOT, 'dev/tools/install-bench-python.sh')], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  const v = existsSync(python) ? version() : undefined;
  if (r.status === 0 && v) return { python, version: v };
  const why = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-1)[0];
  return `dev/tools/install-bench-python.sh failed${why ? `: ${why}` : ''}`;
}

// ---- measuring --------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function check(body: Body, received: [string, string][]): { lost: number; corrupt: number } {
  const seen = new Map<string, string>();
  for (const [id, text] of received) if (!seen.has(id)) seen.set(id, text);
  let lost = 0;
  let corrupt = 0;
  for (const [id, text] of body.expected) {
    const got = seen.get(id);
    if (got === undefined) lost++;
    else if (got !== text) corrupt++;
  }
  return { lost, corrupt };
}

const LABELS: Record<ReaderFigure['id'], [string, ReaderFigure['where']]> = {
  ceiling: ['`JSON.parse` ceiling (pre-split strings)', 'in process'],
  'decode-floor': ['UTF-8 decode + `JSON.parse` (pre-split byte lines)', 'in process'],
  'ours-memory': ['ours: `LineDecoder` + `JSON.parse`, same chunks', 'in process'],
  transport: ['`http.get`, bytes only (the transport, no reader)', 'loopback HTTP'],
  'ours-http': ['ours: `LineDecoder` + `JSON.parse` on `http.get`', 'loopback HTTP'],
  'ours-connection': ['ours: stream connection (`connectOnce`, to `Post`)', 'loopback HTTP'],
  'twitter-api-v2': ['`twitter-api-v2` `TweetStream`', 'loopback HTTP'],
  tweepy: ['tweepy `StreamingClient`', 'loopback HTTP'],
};

export async function runReaderPeers(opts: ReaderPeersOptions = {}): Promise<ReaderPeersResult> {
  const posts = opts.posts ?? 30_000;
  const runs = opts.runs ?? 5;
  const maxChunk = opts.maxChunk ?? 65_536;
  const seed = opts.seed ?? 42;
  const log = opts.log ?? (() => undefined);

  const body = buildBody(posts, seed, maxChunk);
  const mb = body.bytes.length / 1e6;
  log(
    `reader peers: ${posts} posts, ${mb.toFixed(1)} MB, ${body.sizes.length} server writes ` +
      `(${body.cutsInsideCharacter} inside a character), ${runs} runs`,
  );
  const figures = new Map<ReaderFigure['id'], ReaderFigure>();
  for (const [id, [label, where]] of Object.entries(LABELS) as [
    ReaderFigure['id'],
    [string, ReaderFigure['where']],
  ][]) {
    figures.set(id, {
      id,
      label,
      where,
      available: true,
      counts: id !== 'transport',
      seconds: [],
      lost: [],
      corrupt: [],
      parseErrors: [],
      errors: [],
    });
  }
  const record = (id: ReaderFigure['id'], r: Run, checked = check(body, r.received)): void => {
    const f = figures.get(id)!;
    f.seconds.push(r.seconds);
    f.lost.push(checked.lost);
    f.corrupt.push(checked.corrupt);
    f.parseErrors.push(r.parseErrors);
    if (r.error) f.errors.push(r.error);
  };

  const tmp = mkdtempSync(join(tmpdir(), 'reader-peers-'));
  let tweepy: Tweepy | undefined;
  const found = findTweepy(opts.installPython ?? true, log);
  if (typeof found === 'string') {
    Object.assign(figures.get('tweepy')!, { available: false, reason: found });
  } else {
    const expectedFile = join(tmp, 'expected.ndjson');
    writeFileSync(
      expectedFile,
      [...body.expected].map(([id, text]) => JSON.stringify({ id, text })).join('\n') + '\n',
    );
    tweepy = { ...found, expectedFile };
    figures.get('tweepy')!.label = `tweepy ${found.version} \`StreamingClient\``;
  }
  const server = await startServer(body);
  try {
    // Warm-up (JIT, sockets), not recorded.
    ceiling(body);
    decodeFloor(body);
    oursInMemory(body);
    await transport(server.baseUrl);
    await oursOverHttp(server.baseUrl);
    await oursConnection(server.baseUrl);
    await twitterApiV2(server.baseUrl);
    for (let i = 0; i < runs; i++) {
      record('ceiling', ceiling(body));
      record('decode-floor', decodeFloor(body));
      record('ours-memory', oursInMemory(body));
      record('transport', await transport(server.baseUrl), { lost: 0, corrupt: 0 });
      record('ours-http', await oursOverHttp(server.baseUrl));
      record('ours-connection', await oursConnection(server.baseUrl));
      record('twitter-api-v2', await twitterApiV2(server.baseUrl));
      if (tweepy) {
        const t = await tweepyRun(tweepy, server.baseUrl);
        if (t.out) {
          record(
            'tweepy',
            { seconds: t.out.seconds, received: [], parseErrors: 0, error: t.out.error ?? undefined },
            { lost: t.out.lost, corrupt: t.out.corrupt },
          );
        } else {
          Object.assign(figures.get('tweepy')!, { available: false, reason: t.error });
          tweepy = undefined;
        }
      }
      const f = (id: ReaderFigure['id']): string => {
        const s = figures.get(id)!.seconds.at(-1);
        return s === undefined ? '–' : `${(posts / s).toFixed(0)}/s`;
      };
      log(
        `run ${i + 1}/${runs}: ceiling ${f('ceiling')}, ours http ${f('ours-http')}, ` +
          `connection ${f('ours-connection')}, twitter-api-v2 ${f('twitter-api-v2')}, tweepy ${f('tweepy')}`,
      );
    }
  } finally {
    await server.close();
    rmSync(tmp, { recursive: true, force: true });
  }

  const readers = [...figures.values()];
  for (const f of readers) {
    if (f.seconds.length === 0) {
      f.available = false;
      continue;
    }
    const s = median(f.seconds);
    f.postsPerSec = posts / s;
    f.mbPerSec = mb / s;
  }
  const ceil = figures.get('ceiling')!.postsPerSec!;
  for (const f of readers) if (f.postsPerSec !== undefined) f.ofCeiling = f.postsPerSec / ceil;
  const bad = (f: ReaderFigure): boolean =>
    f.lost.some((n) => n > 0) || f.corrupt.some((n) => n > 0) || f.errors.length > 0;
  const ours = figures.get('ours-http')!;
  const ratio = ours.ofCeiling ?? 0;
  return {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      tweepy: typeof found === 'string' ? undefined : found.version,
    },
    settings: { posts, runs, maxChunk, seed, aggregate: 'median' },
    body: {
      posts,
      bytes: body.bytes.length,
      nonAsciiByteShare: body.nonAsciiBytes / body.bytes.length,
      keepAlives: body.keepAlives,
      serverWrites: body.sizes.length,
      flushPauses: body.flush.reduce((a, b) => a + b, 0),
      cutsInsideCharacter: body.cutsInsideCharacter,
    },
    readers,
    target: {
      ratio,
      met: ratio >= TARGET_RATIO,
      oursCorrect: !bad(ours) && !bad(figures.get('ours-connection')!),
      peersIncorrect: readers
        .filter((f) => (f.id === 'twitter-api-v2' || f.id === 'tweepy') && f.available && bad(f))
        .map((f) => f.id),
    },
  };
}

// ---- the report -------------------------------------------------------------------------------

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const range = (xs: number[]): string => {
  if (xs.length === 0) return '–';
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? int(lo) : `${int(lo)}–${int(hi)}`;
};

export function markdown(r: ReaderPeersResult): string {
  const b = r.body;
  const out = [
    `Stream reader beside its peers: ${int(b.posts)} posts, ${(b.bytes / 1e6).toFixed(1)} MB ` +
      `(${(b.nonAsciiByteShare * 100).toFixed(1)} % of bytes non-ASCII), \`\\r\\n\` endings, ` +
      `${int(b.keepAlives)} keep-alives; served over loopback HTTP in ${int(b.serverWrites)} writes of ` +
      `1 B–${int(r.settings.maxChunk)} B (${int(b.cutsInsideCharacter)} cut inside a character), ` +
      `${int(b.flushPauses)} flush pauses. Median of ${r.settings.runs} interleaved runs; lost and ` +
      `corrupt: range over the runs. ${r.machine.cpus} CPUs (${r.machine.cpuModel}), Node ${r.machine.node}.`,
    '',
    '| reader | where | posts/s | MB/s | × ceiling | lost | corrupt text | parse errors |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const f of r.readers) {
    if (!f.available) {
      out.push(`| ${f.label} | ${f.where} | not available: ${f.reason ?? 'no run'} | | | | | |`);
      continue;
    }
    const err = f.errors.length > 0 ? ` (${f.errors.length} runs ended early: ${f.errors[0]})` : '';
    out.push(
      `| ${f.label}${err} | ${f.where} | ${int(f.postsPerSec!)} | ${f.mbPerSec!.toFixed(1)} | ` +
        `${f.ofCeiling!.toFixed(2)} | ${f.counts ? range(f.lost) : '–'} | ${f.counts ? range(f.corrupt) : '–'} | ` +
        `${f.counts ? range(f.parseErrors) : '–'} |`,
    );
  }
  const t = r.target;
  out.push('');
  out.push(
    `- target, ours over HTTP ≥ ${TARGET_RATIO} of the \`JSON.parse\` ceiling: ${t.ratio.toFixed(2)}, ` +
      `${t.met ? 'met' : 'missed'}`,
  );
  out.push(
    `- target, correct where the peers are not: ours ${t.oursCorrect ? 'lost and corrupted nothing' : 'LOST OR CORRUPTED POSTS'}; ` +
      `peers that lost or corrupted posts: ${t.peersIncorrect.length > 0 ? t.peersIncorrect.join(', ') : 'none'}`,
  );
  return out.join('\n');
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      posts: { type: 'string', default: '30000' },
      runs: { type: 'string', default: '5' },
      'max-chunk': { type: 'string', default: '65536' },
      seed: { type: 'string', default: '42' },
      json: { type: 'boolean', default: false },
    },
  });
  runReaderPeers({
    posts: Number(values.posts),
    runs: Number(values.runs),
    maxChunk: Number(values['max-chunk']),
    seed: Number(values.seed),
    log: (l) => process.stderr.write(`[reader-peers] ${l}\n`),
  })
    .then((r) => {
      process.stdout.write(`${values.json ? JSON.stringify(r, null, 2) : markdown(r)}\n`);
    })
    .catch((e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    });
}
