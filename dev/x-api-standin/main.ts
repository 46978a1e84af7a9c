/**
 * CLI for the X API stand-in: `npm run x-standin -- --port 8787 --rate 50 [--seed 1]
 * [--keep-alive-ms 20000] [--rules 'tesla#tesla;ev#ev'] [--token secret] [--faults '{"splitWrites":true}']`.
 * Runs until SIGINT/SIGTERM. Faults can be changed while it runs: `curl -XPOST
 * localhost:8787/_control/faults -d '{"dropAfterPosts":10}'`.
 */
import { parseArgs } from 'node:util';
import { parseRules } from '../../src/domain/rules';
import { startXStandin, type StandinFaults } from './server';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.X_STANDIN_PORT ?? '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      rate: { type: 'string', default: '10' },
      seed: { type: 'string', default: '1' },
      'keep-alive-ms': { type: 'string', default: '20000' },
      rules: { type: 'string' },
      token: { type: 'string' },
      faults: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm run x-standin -- [--port 8787] [--host 127.0.0.1] [--rate 10] [--seed 1] ' +
        "[--keep-alive-ms 20000] [--rules 'tesla#tesla'] [--token T] [--faults JSON]",
    );
    return;
  }
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a non-negative number, got ${v}`);
    return n;
  };
  const standin = await startXStandin({
    port: num('port', values.port),
    host: values.host,
    rate: num('rate', values.rate),
    seed: num('seed', values.seed),
    keepAliveMs: num('keep-alive-ms', values['keep-alive-ms']),
    token: values.token,
    rules: values.rules ? parseRules(values.rules) : undefined,
    faults: values.faults ? (JSON.parse(values.faults) as StandinFaults) : undefined,
  });
  console.log(`X API stand-in listening on ${standin.url} (rate ${values.rate}/s, seed ${values.seed})`);
  console.log(`  stream:  ${standin.url}/2/tweets/search/stream`);
  console.log(`  search:  ${standin.url}/2/tweets/search/{recent,all}`);
  console.log(`  compliance: ${standin.url}/2/compliance/jobs`);
  console.log(`  control: ${standin.url}/_control/{faults,rate,ledger,world,stats,compliance}`);
  const stop = (): void => {
    console.log('stopping X API stand-in');
    void standin.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(1);
});
