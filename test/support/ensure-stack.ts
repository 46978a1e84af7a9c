/**
 * Runs around every integration/e2e test file. The BigQuery emulator's embedded SQL engine (ZetaSQL
 * compiled to wasm) never returns memory and crashes once its heap passes 2 GiB; one busy test file
 * can get there. So, when the stack is ours:
 * - before each file: every component is checked (a dead one is restarted) and the BigQuery emulator
 *   is restarted on an empty database (each file provisions its own uniquely named datasets);
 * - before each test: the emulator is restarted, keeping its data, if its memory has grown large.
 * Running the tests therefore resets the local BigQuery emulator's data.
 */
import { recycleBigQueryIfBloated, restartBigQuery, stackUp } from '../../dev/stack/manager';

const log = (line: string) => process.stderr.write(`stack: ${line}\n`);

beforeAll(async () => {
  const up = await stackUp({ log });
  Object.assign(process.env, up.env);
  await restartBigQuery({ fresh: true });
}, 180_000);

beforeEach(async () => {
  if (await recycleBigQueryIfBloated(log)) await stackUp({ log });
}, 180_000);
