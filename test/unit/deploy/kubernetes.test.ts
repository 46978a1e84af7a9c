/**
 * k8s/: every overlay renders with `kubectl kustomize`, every object validates against the Kubernetes
 * schemas (npm kubernetes-models), and the platform rules of issue 8 hold for every container.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { settings } from '../../../src/config/settings';
import { type K8sObject, kustomize, isPinnedImage, quantityToMiB, repoRoot, settingsByEnv } from './tools';

interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: unknown; configMapKeyRef?: unknown } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: Record<string, unknown>;
  livenessProbe?: Record<string, unknown>;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type?: string };
  };
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: unknown; secret?: { secretName: string } }[];
}

interface Workload {
  object: K8sObject;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  pod: PodSpec;
}

/** Env names used in containers or the ConfigMap that are not app settings, and why. */
const nonAppEnv = new Set([
  'NODE_OPTIONS', // Node's own: the heap cap (max-old-space-size)
]);

const temporalClients = ['stream-worker', 'batch-worker', 'dashboard'];
const graceMsDefault = Number(settings.workerShutdownGraceMs.default);

const overlaysDir = path.join(repoRoot, 'k8s/overlays');
const overlays = readdirSync(overlaysDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

function modelFor(apiVersion: string, kind: string): new (data: unknown) => { validate(): void } {
  // kubernetes-models lays its classes out by apiVersion: kubernetes-models/apps/v1 exports Deployment.
  const mod = require(`kubernetes-models/${apiVersion}`) as Record<string, unknown>;
  const model = mod[kind];
  if (typeof model !== 'function') throw new Error(`kubernetes-models has no ${apiVersion} ${kind}`);
  return model as new (data: unknown) => { validate(): void };
}

function workloadsOf(objects: K8sObject[]): Workload[] {
  const out: Workload[] = [];
  for (const o of objects) {
    const spec = o.spec as Record<string, unknown> | undefined;
    let template: { metadata?: K8sObject['metadata']; spec: PodSpec } | undefined;
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind)) {
      template = spec?.template as typeof template;
    } else if (o.kind === 'CronJob') {
      template = (spec?.jobTemplate as { spec: { template: typeof template } }).spec.template;
    }
    if (template) {
      out.push({
        object: o,
        labels: template.metadata?.labels ?? {},
        annotations: template.metadata?.annotations ?? {},
        pod: template.spec,
      });
    }
  }
  return out;
}

function configMaps(objects: K8sObject[]): Map<string, Record<string, string>> {
  return new Map(
    objects
      .filter((o) => o.kind === 'ConfigMap')
      .map((o) => [o.metadata.name, (o.data as Record<string, string> | undefined) ?? {}]),
  );
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function allContainers(pod: PodSpec): Container[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

/** The settings a container sees: its ConfigMaps (envFrom) overlaid with its own `env`. */
function effectiveEnv(c: Container, cms: Map<string, Record<string, string>>): Map<string, string> {
  const env = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef)
      for (const [k, v] of Object.entries(cms.get(from.configMapRef.name) ?? {})) env.set(k, v);
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env.set(e.name, e.value);
  return env;
}

describe.each(overlays)('k8s/overlays/%s', (overlay) => {
  let objects: K8sObject[];
  let workloads: Workload[];
  let cms: Map<string, Record<string, string>>;

  beforeAll(() => {
    objects = kustomize(`k8s/overlays/${overlay}`);
    workloads = workloadsOf(objects);
    cms = configMaps(objects);
  });

  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const named = (kind: string, name: string) => byKind(kind).find((o) => o.metadata.name === name);
  const workload = (name: string) => {
    const w = workloads.find((x) => x.object.metadata.name === name);
    if (!w) throw new Error(`no workload ${name} in ${overlay}`);
    return w;
  };
  const eachContainer = (fn: (c: Container, w: Workload) => void) => {
    for (const w of workloads) for (const c of allContainers(w.pod)) fn(c, w);
  };

  it('renders the expected objects', () => {
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of [
      'Namespace',
      'ServiceAccount',
      'ConfigMap',
      'Deployment',
      'HorizontalPodAutoscaler',
      'Service',
      'PodDisruptionBudget',
      'NetworkPolicy',
    ]) {
      expect(kinds).toContain(kind);
    }
    for (const name of temporalClients) expect(named('Deployment', name)).toBeDefined();
  });

  it('validates every object against the Kubernetes schemas', () => {
    // GKE Managed Prometheus's CRDs are not in kubernetes-models: monitoring.test.ts checks them.
    for (const o of objects.filter((x) => !x.apiVersion.startsWith('monitoring.googleapis.com/'))) {
      const Model = modelFor(o.apiVersion, o.kind);
      expect(() => new Model(o).validate()).not.toThrow();
    }
  });

  it('puts every namespaced object in the namespace it creates', () => {
    const namespaces = byKind('Namespace').map((n) => n.metadata.name);
    expect(namespaces).toHaveLength(1);
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
      expect(`${o.kind}/${o.metadata.name} in ${o.metadata.namespace}`).toBe(
        `${o.kind}/${o.metadata.name} in ${namespaces[0]}`,
      );
    }
  });

  it('commits no secret values: no Secret objects, no literal values for secret settings', () => {
    const secrets = byKind('Secret').filter((s) => s.data !== undefined || s.stringData !== undefined);
    expect(secrets.map((s) => s.metadata.name)).toEqual([]);
    // Secret settings that hold the secret itself (a path to a secret file, e.g. TEMPORAL_TLS_KEY_PATH,
    // is redacted in logs but is not a secret value).
    const secretEnvs = [...settingsByEnv.values()]
      .filter((s) => s.secret && s.form !== 'a file path')
      .map((s) => s.env);
    expect(secretEnvs).toEqual(expect.arrayContaining(['X_BEARER_TOKEN', 'TEMPORAL_API_KEY']));
    for (const data of cms.values())
      for (const env of secretEnvs) expect(Object.keys(data)).not.toContain(env);
    eachContainer((c) => {
      for (const e of c.env ?? []) {
        if (secretEnvs.includes(e.name)) expect({ [e.name]: e.value }).toEqual({ [e.name]: undefined });
      }
    });
  });

  it('uses only app settings as ConfigMap keys, with values the config module accepts', () => {
    for (const [name, data] of cms) {
      for (const [key, value] of Object.entries(data)) {
        const setting = settingsByEnv.get(key);
        expect(`${name}: ${key} is ${setting ? 'a setting' : 'not in src/config/settings.ts'}`).toBe(
          `${name}: ${key} is a setting`,
        );
        const parsed = setting!.schema.safeParse(value);
        expect(`${key}=${value}: ${parsed.success ? 'ok' : parsed.error.issues[0]?.message}`).toBe(
          `${key}=${value}: ok`,
        );
      }
    }
  });

  it('uses only app settings (or allow-listed runtime names) as container env names', () => {
    eachContainer((c) => {
      for (const e of c.env ?? []) {
        expect(`${c.name}: ${e.name} known=${settingsByEnv.has(e.name) || nonAppEnv.has(e.name)}`).toBe(
          `${c.name}: ${e.name} known=true`,
        );
      }
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef) expect(cms.has(from.configMapRef.name)).toBe(true);
      }
    });
  });

  it('gives every container resource requests and limits', () => {
    eachContainer((c) => {
      for (const res of ['cpu', 'memory']) {
        expect({ container: c.name, request: res, value: c.resources?.requests?.[res] }).toEqual({
          container: c.name,
          request: res,
          value: expect.any(String),
        });
        expect({ container: c.name, limit: res, value: c.resources?.limits?.[res] }).toEqual({
          container: c.name,
          limit: res,
          value: expect.any(String),
        });
      }
      expect(quantityToMiB(c.resources!.requests!.memory!)).toBeLessThanOrEqual(
        quantityToMiB(c.resources!.limits!.memory!),
      );
    });
  });

  it('caps the Node heap at about 80 % of the memory limit (NODE_OPTIONS)', () => {
    eachContainer((c) => {
      const opts = c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
      const m = /--max-old-space-size=(\d+)/.exec(opts);
      expect({ container: c.name, NODE_OPTIONS: m ? 'set' : opts }).toEqual({
        container: c.name,
        NODE_OPTIONS: 'set',
      });
      const ratio = Number(m![1]) / quantityToMiB(c.resources!.limits!.memory!);
      expect(ratio).toBeGreaterThanOrEqual(0.75);
      expect(ratio).toBeLessThanOrEqual(0.85);
    });
  });

  it('gives every container readiness and liveness probes on a declared port', () => {
    eachContainer((c) => {
      expect({ container: c.name, readiness: !!c.readinessProbe, liveness: !!c.livenessProbe }).toEqual({
        container: c.name,
        readiness: true,
        liveness: true,
      });
      for (const probe of [c.readinessProbe!, c.livenessProbe!]) {
        const target = (probe.httpGet ?? probe.tcpSocket) as { port: string | number } | undefined;
        expect(target).toBeDefined();
        const declared = (c.ports ?? []).some(
          (p) => p.name === target!.port || p.containerPort === target!.port,
        );
        expect({ container: c.name, port: target!.port, declared }).toEqual({
          container: c.name,
          port: target!.port,
          declared: true,
        });
      }
    });
  });

  it('probes the Temporal clients on their health endpoints', () => {
    for (const name of temporalClients) {
      const c = workload(name).pod.containers[0]!;
      expect((c.livenessProbe!.httpGet as { path: string }).path).toBe('/healthz');
      expect(['/healthz', '/readyz']).toContain((c.readinessProbe!.httpGet as { path: string }).path);
    }
  });

  it('hardens every pod and container (non-root, read-only root, no escalation, no capabilities)', () => {
    for (const w of workloads) {
      const pod = w.pod;
      const where = `${w.object.kind}/${w.object.metadata.name}`;
      expect({
        where,
        hostNetwork: !!pod.hostNetwork,
        hostPID: !!pod.hostPID,
        hostIPC: !!pod.hostIPC,
      }).toEqual({
        where,
        hostNetwork: false,
        hostPID: false,
        hostIPC: false,
      });
      expect({ where, automount: pod.automountServiceAccountToken }).toEqual({ where, automount: false });
      for (const c of allContainers(pod)) {
        const sc = c.securityContext ?? {};
        const seccomp = sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
        expect({
          container: c.name,
          runAsNonRoot: sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot,
          runAsUserNotRoot: (sc.runAsUser ?? pod.securityContext?.runAsUser ?? 1000) !== 0,
          privileged: !!sc.privileged,
          allowPrivilegeEscalation: sc.allowPrivilegeEscalation,
          readOnlyRootFilesystem: sc.readOnlyRootFilesystem,
          dropsAll: sc.capabilities?.drop?.includes('ALL') ?? false,
          adds: sc.capabilities?.add ?? [],
          seccomp,
        }).toEqual({
          container: c.name,
          runAsNonRoot: true,
          runAsUserNotRoot: true,
          privileged: false,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          dropsAll: true,
          adds: [],
          seccomp: 'RuntimeDefault',
        });
        // A read-only root filesystem still needs a writable /tmp.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect({
          container: c.name,
          tmpIsEmptyDir: !!pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir,
        }).toEqual({ container: c.name, tmpIsEmptyDir: true });
      }
    }
  });

  it('pins every image (a version tag or a digest, never :latest)', () => {
    eachContainer((c) => {
      expect({ container: c.name, image: c.image, pinned: isPinnedImage(c.image ?? '') }).toEqual({
        container: c.name,
        image: c.image,
        pinned: true,
      });
    });
  });

  it('gives pods a termination grace period longer than the worker shutdown grace', () => {
    for (const w of workloads) {
      const env = effectiveEnv(w.pod.containers[0]!, cms);
      const graceMs = Number(env.get(settings.workerShutdownGraceMs.env) ?? graceMsDefault);
      const where = `${w.object.kind}/${w.object.metadata.name}`;
      // Kubernetes' default is 30 s when unset.
      const period = w.pod.terminationGracePeriodSeconds ?? 30;
      expect({ where, longer: period > graceMs / 1000 }).toEqual({ where, longer: true });
    }
    // The workers get a clear margin (shutdown grace + time to exit and flush).
    for (const name of ['stream-worker', 'batch-worker']) {
      expect(workload(name).pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(
        graceMsDefault / 1000 + 15,
      );
    }
  });

  it('annotates every app pod for Prometheus scraping on a declared port', () => {
    for (const name of ['stream-worker', 'batch-worker']) {
      const w = workload(name);
      expect(w.annotations['prometheus.io/scrape']).toBe('true');
      expect(w.annotations['prometheus.io/path']).toBe('/metrics');
      const ports = w.pod.containers.flatMap((c) => (c.ports ?? []).map((p) => String(p.containerPort)));
      expect(ports).toContain(w.annotations['prometheus.io/port']);
    }
    // The dashboard has no /metrics endpoint: it states that instead of failing scrapes.
    expect(workload('dashboard').annotations['prometheus.io/scrape']).toBe('false');
  });

  it('matches the health ports of the containers to the settings they read', () => {
    const portSetting: Record<string, string> = {
      'stream-worker': settings.streamWorkerHealthPort.env,
      'batch-worker': settings.batchWorkerHealthPort.env,
      dashboard: settings.dashboardPort.env,
    };
    for (const [name, env] of Object.entries(portSetting)) {
      const c = workload(name).pod.containers[0]!;
      const value = effectiveEnv(c, cms).get(env) ?? settingsByEnv.get(env)!.default;
      expect(c.ports?.map((p) => String(p.containerPort))).toContain(value);
      // The health server must listen beyond loopback inside a pod.
      expect(effectiveEnv(c, cms).get(settings.healthHost.env)).toBe('0.0.0.0');
    }
  });

  it('runs one stream worker, replaced with Recreate (one stream connection)', () => {
    const d = named('Deployment', 'stream-worker')!.spec as { replicas: number; strategy: { type: string } };
    expect(d.replicas).toBe(1);
    expect(d.strategy.type).toBe('Recreate');
    expect(workload('stream-worker').pod.containers[0]!.args).toEqual([
      'node',
      'dist/src/workers/stream-worker.js',
    ]);
  });

  it('scales the batch worker with an HPA that owns its replica count', () => {
    const hpa = byKind('HorizontalPodAutoscaler').find(
      (h) => (h.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === 'batch-worker',
    );
    expect(hpa).toBeDefined();
    const spec = hpa!.spec as { minReplicas: number; maxReplicas: number };
    expect(spec.maxReplicas).toBeGreaterThanOrEqual(spec.minReplicas);
    expect((named('Deployment', 'batch-worker')!.spec as { replicas?: number }).replicas).toBeUndefined();
    expect(workload('batch-worker').pod.containers[0]!.args).toEqual([
      'node',
      'dist/src/workers/batch-worker.js',
    ]);
  });

  it('exposes the dashboard through a Service that selects its pods', () => {
    const svc = named('Service', 'dashboard')!.spec as {
      selector: Record<string, string>;
      ports: { targetPort: unknown }[];
    };
    expect(matches(svc.selector, workload('dashboard').labels)).toBe(true);
    expect(svc.ports[0]!.targetPort).toBe('http');
  });

  it('covers every Deployment with a PodDisruptionBudget that cannot block a drain', () => {
    for (const w of workloads.filter((x) => x.object.kind === 'Deployment')) {
      const pdb = byKind('PodDisruptionBudget').find((p) =>
        matches(
          (p.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
          w.labels,
        ),
      );
      if (!temporalClients.includes(w.object.metadata.name)) continue;
      expect({ deployment: w.object.metadata.name, pdb: pdb?.metadata.name }).toEqual({
        deployment: w.object.metadata.name,
        pdb: expect.any(String),
      });
      expect((pdb!.spec as { maxUnavailable?: number }).maxUnavailable).toBeGreaterThanOrEqual(1);
    }
  });

  it('isolates every pod with a NetworkPolicy (DNS, Temporal, HTTPS out; health/dashboard ports in)', () => {
    interface Rule {
      ports?: { port: number; protocol?: string }[];
    }
    const policies = byKind('NetworkPolicy').map(
      (p) =>
        p.spec as {
          podSelector: { matchLabels?: Record<string, string> };
          policyTypes: string[];
          ingress?: Rule[];
          egress?: Rule[];
        },
    );
    for (const w of workloads) {
      const applying = policies.filter((p) => matches(p.podSelector.matchLabels, w.labels));
      const types = new Set(applying.flatMap((p) => p.policyTypes));
      expect({
        pod: w.object.metadata.name,
        ingress: types.has('Ingress'),
        egress: types.has('Egress'),
      }).toEqual({
        pod: w.object.metadata.name,
        ingress: true,
        egress: true,
      });
      const egressPorts = applying.flatMap((p) =>
        (p.egress ?? []).flatMap((r) => (r.ports ?? []).map((x) => x.port)),
      );
      for (const port of [53, 443, 7233]) expect(egressPorts).toContain(port);
      const ingressPorts = applying.flatMap((p) =>
        (p.ingress ?? []).flatMap((r) => (r.ports ?? []).map((x) => x.port)),
      );
      // Nothing is open that no container serves.
      const served = w.pod.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
      expect(ingressPorts.length).toBeGreaterThan(0);
      for (const port of served) expect(ingressPorts).toContain(port);
      for (const port of ingressPorts) expect([9464, 9465, 8080, 8787]).toContain(port);
    }
  });

  it('binds the Temporal clients to a Workload Identity service account', () => {
    const sa = named('ServiceAccount', 'x-stream-pipeline')!;
    expect(sa.metadata.annotations?.['iam.gke.io/gcp-service-account']).toMatch(
      /^[a-z][a-z0-9-]+@[a-z][a-z0-9-]+\.iam\.gserviceaccount\.com$/,
    );
    for (const name of temporalClients) {
      expect(workload(name).pod.serviceAccountName).toBe('x-stream-pipeline');
      const env = effectiveEnv(workload(name).pod.containers[0]!, cms);
      expect(env.has('GOOGLE_APPLICATION_CREDENTIALS')).toBe(false);
    }
  });

  it('reads every secret from a file on a mounted Secret volume', () => {
    const fileSettings = [
      settings.xBearerTokenFile.env,
      settings.temporalApiKeyFile.env,
      settings.temporalTlsCertPath.env,
      settings.temporalTlsKeyPath.env,
    ];
    for (const w of workloads) {
      for (const c of w.pod.containers) {
        const env = effectiveEnv(c, cms);
        for (const key of fileSettings) {
          const file = env.get(key);
          if (file === undefined) continue;
          const mount = c.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
          const volume = w.pod.volumes?.find((v) => v.name === mount?.name);
          expect({ container: c.name, key, fromSecret: !!volume?.secret }).toEqual({
            container: c.name,
            key,
            fromSecret: true,
          });
        }
      }
    }
  });

  if (overlay.startsWith('gke')) {
    it('targets Temporal Cloud over TLS with a credential, and an Artifact Registry image', () => {
      for (const name of temporalClients) {
        const c = workload(name).pod.containers[0]!;
        const env = effectiveEnv(c, cms);
        expect(env.get(settings.temporalAddress.env)).toMatch(/\.tmprl\.cloud:7233$/);
        expect(env.get(settings.temporalTls.env)).toBe('true');
        const hasKey = env.has(settings.temporalApiKeyFile.env);
        const hasMtls = env.has(settings.temporalTlsCertPath.env) && env.has(settings.temporalTlsKeyPath.env);
        expect(hasKey || hasMtls).toBe(true);
        expect(c.image).toMatch(/^[a-z0-9-]+-docker\.pkg\.dev\/[a-z][a-z0-9-]+\/[^/]+\/x-stream-pipeline:/);
      }
      const stream = workload('stream-worker').pod.containers[0]!;
      expect(effectiveEnv(stream, cms).get(settings.xBearerTokenFile.env)).toBeDefined();
    });
  }
});
