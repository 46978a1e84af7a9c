/**
 * `npm run start:pipeline`: what `temporal workflow start --type supervisorWorkflow` does, from the
 * same configuration the workers read (stream name, task queue, Temporal address and credentials).
 * A supervisor that is already running for this stream is reported, not duplicated.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { loadConfigOrExit } from '../src/config';
import { supervisorWorkflowId } from '../src/domain/pipeline-status';
import { connectClient } from '../src/adapters/temporal/connection';
import { supervisorWorkflow } from '../src/workflows/supervisor';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const client = await connectClient(config.temporal);
  const workflowId = supervisorWorkflowId(config.x.streamName);
  try {
    await client.workflow.start(supervisorWorkflow, {
      workflowId,
      taskQueue: config.temporal.streamTaskQueue,
      args: [{ streamName: config.x.streamName }],
    });
    console.log(`started ${workflowId} on task queue ${config.temporal.streamTaskQueue}`);
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    console.log(`${workflowId} is already running`);
  } finally {
    await client.connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(`start failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
