/**
 * Prebuilds the workflow bundle for production workers (`npm run build`), so they start without
 * webpack and run exactly the code that was tested. Writes dist/workflow-bundle.js.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

async function main(): Promise<void> {
  // Compiled to dist/scripts/; the workflows are compiled next to it in dist/src/workflows.
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows') });
  const out = join(__dirname, '..', 'workflow-bundle.js');
  mkdirSync(join(__dirname, '..'), { recursive: true });
  writeFileSync(out, code);
  process.stdout.write(`wrote ${out} (${(code.length / 1024).toFixed(0)} KiB)\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`workflow bundle failed: ${String(err)}\n`);
  process.exit(1);
});
