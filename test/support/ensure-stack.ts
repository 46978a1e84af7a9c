/**
 * Runs before each integration/e2e test file: makes sure every stack component is still up
 * (restarting one that died, e.g. the BigQuery emulator, which crashes when its embedded SQL engine
 * runs out of memory after many DDL statements), so one emulator crash does not fail every later file.
 */
import { stackUp } from '../../dev/stack/manager';

beforeAll(async () => {
  const up = await stackUp({ recycleBigQuery: true });
  if (up.started.length > 0) {
    process.stderr.write(`stack: restarted ${up.started.join(', ')} (see .local/*.log for why it stopped)\n`);
  }
  Object.assign(process.env, up.env);
}, 180_000);
