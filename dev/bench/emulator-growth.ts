/**
 * `tsx dev/bench/emulator-growth.ts [mode] [cycles]`: what makes the goccy BigQuery emulator grow.
 * Starts a private emulator (ports 19050/19060, database in a temp dir) and runs `cycles` load
 * batches of 500 posts through the real writer, printing the emulator's resident memory, its
 * database size and its job count every 25 cycles, then restarts it on the same database and
 * reports whether (and how fast) it comes back. Modes:
 *   - `writer`: the writer as configured (`BIGQUERY_EMULATOR_JOB_RETENTION` etc. from the env)
 *   - `create`: a new table per cycle (tables.insert) and nothing else
 *   - `ddl`:    a new table and its deletion (tables.insert + tables.delete) per cycle
 *   - `jobs`:   a trivial `SELECT 1` query job per cycle and nothing else
 *   - `load`:   the writer's load job alone (500 rows into one table, WRITE_TRUNCATE)
 *   - `insert`: an `INSERT … SELECT` of 500 new rows per cycle into the growing `posts`, no load job
 *   - `notin`:  the same insert with the writer's `NOT IN (SELECT id FROM posts …)` condition
 *   - `count`:  the plain insert plus the writer's `COUNT(*) … WHERE load_run_id = …`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBigQueryClient } from '../../src/adapters/bigquery/client';
import {
  buildInsertAbsentSql,
  createBigQueryLoadSink,
  stagingSlotId,
} from '../../src/adapters/bigquery/writer';
import { loadConfig } from '../../src/config';
import { POSTS_TABLE, toPostRow } from '../../src/domain/bigquery-schema';
import { createLogger } from '../../src/observability/logger';
import { makePost } from '../../test/support/posts';
import { rssMiB, TOOLS_BIN } from '../stack/manager';

const mode = process.argv[2] ?? 'writer';
const cycles = Number(process.argv[3] ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'bq-growth-'));
const db = join(dir, 'bigquery.db');
const PORT = 19050;

function startEmulator(): ChildProcess {
  return spawn(
    join(TOOLS_BIN, 'bigquery-emulator'),
    [
      `--host=127.0.0.1`,
      `--port=${PORT}`,
      '--grpc-port=19060',
      '--project=growth',
      `--database=${db}`,
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'ignore', openSync(join(dir, 'emulator.log'), 'a')] },
  );
}

async function healthy(timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    try {
      const r = await fetch(`http://127.0.0.1:${PORT}/bigquery/v2/projects/growth/datasets`);
      if (r.ok) return Date.now() - t0;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('emulator did not come up');
}

async function jobCount(): Promise<number> {
  const r = await fetch(
    `http://127.0.0.1:${PORT}/bigquery/v2/projects/growth/jobs?maxResults=100000&allUsers=true`,
  );
  const body = (await r.json()) as { jobs?: unknown[] };
  return body.jobs?.length ?? 0;
}

let emu: ChildProcess | undefined;

/** 500 post rows of load run `lr_<i>` with ids unique to the cycle. */
const batch = (i: number) =>
  Array.from({ length: 500 }, (_, k) =>
    toPostRow(makePost(`${i * 1000 + k}`), {
      messageId: `m${i}_${k}`,
      publishTime: new Date().toISOString(),
      ingestedAt: new Date().toISOString(),
      loadRunId: `lr_${i}`,
    }),
  );

async function main() {
  emu = startEmulator();
  await healthy(60_000);
  const config = loadConfig({
    ...process.env,
    GCP_PROJECT_ID: 'growth',
    BIGQUERY_EMULATOR_HOST: `http://127.0.0.1:${PORT}`,
    BIGQUERY_DATASET: 'growth',
  });
  const bq = createBigQueryClient(config.gcp);
  const logger = createLogger({ level: 'warn', format: 'json' });
  const sink = createBigQueryLoadSink({ bq, gcp: config.gcp, logger });
  await sink.ensureTables();
  const report = async (i: number) => {
    const size = statSync(db).size / 2 ** 20;
    process.stdout.write(
      `${mode} cycle ${String(i).padStart(4)}  rss ${rssMiB(emu?.pid)?.toFixed(0)} MiB  db ${size.toFixed(1)} MiB  jobs ${await jobCount()}\n`,
    );
  };
  await report(0);
  for (let i = 1; i <= cycles; i++) {
    if (mode === 'writer') {
      await sink.insertPosts(`lr_${i}`, batch(i), POSTS_TABLE.columns, 'growth');
    } else if (mode === 'load' || mode === 'both') {
      // The load job alone: 500 rows into one staging table, WRITE_TRUNCATE.
      const rows = batch(i);
      await new Promise<void>((resolve, reject) => {
        const ws = bq
          .dataset('growth')
          .table('_stg_load')
          .createWriteStream({
            sourceFormat: 'NEWLINE_DELIMITED_JSON',
            schema: {
              fields: POSTS_TABLE.columns.map((c) => ({ name: c.name, type: c.type, mode: c.mode })),
            },
            writeDisposition: 'WRITE_TRUNCATE',
          } as never);
        ws.once('job', (j: { promise: () => Promise<unknown> }) => j.promise().then(() => resolve(), reject));
        ws.once('error', reject);
        ws.end(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      });
      if (mode === 'both') {
        const sql = buildInsertAbsentSql(
          '`growth.growth.posts`',
          '`growth.growth._stg_load`',
          POSTS_TABLE,
          POSTS_TABLE.columns.map((c) => c.name),
          ['2026-11-25', '2026-11-25'],
          `lr_${i}`,
        );
        await bq.query(sql);
      }
    } else if (mode === 'insert' || mode === 'notin' || mode === 'count') {
      // The insert alone: the same 500 staged rows under new ids into a growing posts table.
      if (i === 1) await sink.insertPosts('lr_0', batch(0), POSTS_TABLE.columns, 'growth');
      const staging = `growth.${stagingSlotId('posts', 'growth', new Date())}`;
      const absent =
        mode === 'notin'
          ? ` WHERE CONCAT(S.id, '_${i}') NOT IN (SELECT T.id FROM growth.posts T WHERE DATE(T.created_at) BETWEEN DATE '2026-11-25' AND DATE '2026-11-25')`
          : '';
      await bq.query(
        `INSERT INTO growth.posts SELECT * REPLACE (CONCAT(id, '_${i}') AS id) FROM ${staging} S${absent}`,
      );
      if (mode === 'count')
        await bq.query(`SELECT COUNT(*) AS n FROM growth.posts WHERE load_run_id = 'lr_${i}'`);
    } else if (mode === 'create' || mode === 'ddl') {
      const t = bq.dataset('growth').table(`t_${i}`);
      await t.create({ schema: { fields: [{ name: 'id', type: 'STRING' }] } });
      if (mode === 'ddl') await t.delete();
    } else {
      await bq.query('SELECT 1 AS one');
    }
    if (i % (cycles <= 50 ? 5 : 25) === 0) await report(i);
  }
  const first = emu;
  first.kill('SIGTERM');
  await new Promise((r) => first.once('exit', r));
  emu = startEmulator();
  const ms = await healthy(120_000).catch(() => -1);
  process.stdout.write(
    `${mode} restart on the same database: ${ms < 0 ? 'FAILED' : `${ms} ms`}, rss ${rssMiB(emu.pid)?.toFixed(0)} MiB\n`,
  );
  emu.kill('SIGKILL');
}

main().catch((err) => {
  emu?.kill('SIGKILL');
  process.stderr.write(`${String((err as Error).message).split('\n')[0]}\n`);
  process.exit(1);
});
