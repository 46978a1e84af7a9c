/**
 * Shared helpers of the deployment-file tests: where the repo and the external tools are, and how to
 * run them. A missing tool fails the test with the command that installs it (never a silent skip).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { settings, type Setting } from '../../../src/config/settings';

export const repoRoot = path.resolve(__dirname, '../../..');
export const installScript = 'bash dev/tools/install-deploy-tools.sh';

/** Every environment variable the app reads, by name. */
export const settingsByEnv: ReadonlyMap<string, Setting<unknown>> = new Map(
  Object.values(settings).map((s) => [s.env, s as Setting<unknown>]),
);

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of a tool: an explicit path, or a name looked up on PATH. */
export function requireTool(tool: string): string {
  if (tool.includes('/')) {
    const abs = path.resolve(repoRoot, tool);
    if (isExecutable(abs)) return abs;
  } else {
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      if (dir && isExecutable(path.join(dir, tool))) return path.join(dir, tool);
    }
  }
  throw new Error(`${tool} is not installed (needed by test/unit/deploy). Install it with: ${installScript}`);
}

export const tools = {
  kubectl: () => requireTool('/usr/bin/kubectl'),
  dockerCompose: () => requireTool('docker-compose'),
  hadolint: () => requireTool('.tools/venv/bin/hadolint'),
};

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool from the repo root and returns its exit code and output (does not throw on failure). */
export function run(file: string, args: readonly string[]): RunResult {
  try {
    const stdout = execFileSync(file, args, {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 32 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
    return { code: e.status ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/** A Kubernetes object as rendered by kustomize (only the fields the tests read are typed). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** `kubectl kustomize <dir>` parsed into objects; throws with kubectl's message when it fails. */
export function kustomize(dir: string): K8sObject[] {
  const result = run(tools.kubectl(), ['kustomize', dir]);
  if (result.code !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${dir}: ${doc.errors.join('; ')}`);
    return doc.toJS() as K8sObject;
  });
}

/** Kubernetes quantity (e.g. `512Mi`, `1G`, `268435456`) in MiB. */
export function quantityToMiB(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`unsupported memory quantity ${q}`);
  const factor: Record<string, number> = {
    '': 1,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return (Number(m[1]) * factor[m[2] ?? '']!) / 1024 ** 2;
}

/** An image reference is pinned when it carries a version tag other than `latest`, or a digest. */
export function isPinnedImage(image: string): boolean {
  if (/@sha256:[a-f0-9]{64}$/.test(image)) return true;
  const lastSegment = image.split('/').pop() ?? '';
  const colon = lastSegment.lastIndexOf(':');
  if (colon < 0) return false;
  const tag = lastSegment.slice(colon + 1);
  return tag.length > 0 && tag !== 'latest';
}
