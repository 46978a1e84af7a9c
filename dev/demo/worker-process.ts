/**
 * A demo process supervised the way Kubernetes supervises a pod's container: it runs in its own
 * process group, and when it exits without being asked to (a crash, an OOM kill, a `kill -9`), it is
 * started again after a back-off that doubles from 1 s up to 30 s (Kubernetes' CrashLoopBackOff
 * goes to 5 min; a demo should come back sooner). A process that stayed up for `resetAfterMs`
 * earns a fresh back-off. Temporal does the rest: the stream activity's heartbeat times out and it
 * is retried on the new worker, which resumes from the supervisor's durable state.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import { groupGone } from '../stack/process-group';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** A run at least this long resets the back-off to `initialMs`. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 30_000, resetAfterMs: 60_000 };

/** The delay before restart number `consecutive` (1-based) of a process that crashed again soon. */
export function restartDelayMs(consecutive: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, consecutive - 1));
}

export interface WorkerProcessOptions {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  say: (line: string) => void;
  backoff?: BackoffPolicy;
}

export class WorkerProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private consecutive = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Restarts after an unexpected exit. */
  restarts = 0;

  constructor(private readonly opts: WorkerProcessOptions) {}

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  start(): void {
    const { name, command, args, cwd, env, say } = this.opts;
    const child = spawn(command, args, {
      cwd,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
      // Its own process group: Ctrl-C reaches only the demo, which stops the workflow first (the
      // workers must still be running to drain) and then the workers.
      detached: true,
    });
    this.child = child;
    this.startedAt = Date.now();
    child.once('exit', (code, signal) => {
      if (this.stopping) return;
      const policy = this.opts.backoff ?? DEFAULT_BACKOFF;
      this.consecutive = Date.now() - this.startedAt >= policy.resetAfterMs ? 1 : this.consecutive + 1;
      const delay = restartDelayMs(this.consecutive, policy);
      this.restarts++;
      say(
        `!! ${name} (pid ${child.pid}) exited (${signal ?? `code ${code}`}); ` +
          `restarting it in ${(delay / 1000).toFixed(0)} s (restart ${this.restarts})`,
      );
      this.timer = setTimeout(() => {
        if (this.stopping) return;
        this.start();
        say(`   ${name} restarted (pid ${this.child?.pid})`);
      }, delay);
    });
  }

  /** SIGTERM (a graceful worker shutdown), SIGKILL after `graceMs`; resolves when it has exited. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    signalGroup(child.pid!, 'SIGTERM');
    const kill = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(kill);
    // Anything the worker itself spawned in its group goes too (tsx runs the worker as its child),
    // and the group is gone before this resolves.
    signalGroup(child.pid!, 'SIGKILL');
    await groupGone(child.pid!, 10_000);
  }

  /** Last resort on process exit: no child outlives the demo. */
  killNow(): void {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.child?.pid) signalGroup(this.child.pid, 'SIGKILL');
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
