/**
 * `npm run stack:up | stack:down | stack:status`: the local stack manager's command line.
 */
import { loadConfig } from '../src/config';
import { provision } from '../src/workers/setup';
import { createLogger } from '../src/observability/logger';
import { stackDown, stackStatus, stackUp, StackError } from './stack/manager';

// No GCE metadata server here: keep google-auth from probing for one.
process.env.METADATA_SERVER_DETECTION ??= 'none';

async function main(cmd: string | undefined): Promise<void> {
  const log = (line: string) => console.log(line);
  switch (cmd) {
    case 'up': {
      const t0 = Date.now();
      const up = await stackUp({ log });
      const config = loadConfig({ ...process.env, ...up.env });
      await provision(config, createLogger({ level: 'warn', format: config.logFormat }));
      console.log(
        `\nlocal stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
          `(started: ${up.started.join(', ') || 'none'}; reused: ${up.reused.join(', ') || 'none'})`,
      );
      for (const u of up.urls) console.log(`  ${u}`);
      console.log('\nTo point a shell at it:');
      for (const [k, v] of Object.entries(up.env)) console.log(`  export ${k}=${v}`);
      return;
    }
    case 'down': {
      const stopped = await stackDown({ log });
      console.log(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing of ours was running');
      return;
    }
    case 'status': {
      for (const c of await stackStatus()) {
        console.log(`${c.name.padEnd(9)} ${c.state}${c.pid ? ` (pid ${c.pid})` : ''}`);
      }
      return;
    }
    default:
      console.error('usage: tsx dev/stack.ts up|down|status');
      process.exit(64);
  }
}

main(process.argv[2]).catch((err: unknown) => {
  console.error(err instanceof StackError ? `stack: ${err.message}` : err);
  process.exit(1);
});
