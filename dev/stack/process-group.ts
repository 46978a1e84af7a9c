/** Process groups: every process the stack manager and the demo start leads its own group. */

/** Whether any process of the group `pid` leads (or `pid` itself) still exists. */
export function groupAlive(pid: number): boolean {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 0);
      return true;
    } catch {
      /* not this way */
    }
  }
  return false;
}

/** Waits up to `timeoutMs` for every process of the group `pid` leads to be gone; whether it is. */
export async function groupGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}
