/**
 * deploy/kubernetes/tslora.yaml (not applied to a cluster here): the core objects validate against the Kubernetes
 * OpenAPI schemas (kubernetes-models), the InferencePool has the v1 fields and points at the Deployment's pods and
 * port, the endpoint-picker config references only declared plugins, the container's flags are accepted by the real
 * `tslora serve` option rules, and the HPA's metric is one the server exports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { ServerMetrics } from '../../src/server/metrics.js';
import { runCli } from './cli-run.js';

const FILE = fileURLToPath(new URL('../../deploy/kubernetes/tslora.yaml', import.meta.url));
const documents = parseAllDocuments(readFileSync(FILE, 'utf8'));
const objects = documents.map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; spec?: any; data?: any });
const find = (kind: string) => {
  const found = objects.find((o) => o.kind === kind);
  assert.ok(found, `${kind} is in ${FILE}`);
  return found as any;
};

const SCHEMAS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

test('every document parses and every core object validates against its schema', () => {
  for (const doc of documents) assert.deepEqual(doc.errors, [], 'YAML parses');
  assert.deepEqual(objects.map((o) => o.kind), ['Deployment', 'Service', 'InferencePool', 'ConfigMap', 'HorizontalPodAutoscaler']);
  for (const o of objects) {
    const Model = SCHEMAS[`${o.apiVersion}/${o.kind}`];
    if (o.kind === 'InferencePool') continue;
    assert.ok(Model, `a schema for ${o.apiVersion} ${o.kind}`);
    assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`);
  }
  // The validator does reject a broken object (so the pass above means something).
  const broken = structuredClone(find('Deployment'));
  broken.spec.template.spec.containers[0].ports[0].containerPort = '8000';
  assert.throws(() => new Deployment(broken).validate(), /containerPort must be integer/);
});

test('probes, ports, drain and the InferencePool agree with the Deployment', () => {
  const deployment = find('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const port = Number(container.args[container.args.indexOf('--port') + 1]);
  assert.equal(container.ports[0].containerPort, port);
  for (const probe of ['startupProbe', 'readinessProbe']) {
    assert.deepEqual(container[probe].httpGet, { path: '/health', port: container.ports[0].name }, probe);
  }
  assert.equal(container.livenessProbe.tcpSocket.port, container.ports[0].name, 'liveness stays up while a drain makes /health 503');
  const drainS = Number(container.args[container.args.indexOf('--shutdown-timeout') + 1]);
  assert.ok(pod.terminationGracePeriodSeconds > Number(container.lifecycle.preStop.exec.command[1]) + drainS, 'the grace period covers preStop and the drain');
  assert.equal(find('Service').spec.ports[0].targetPort, container.ports[0].name);
  const pool = find('InferencePool');
  assert.equal(pool.apiVersion, 'inference.networking.k8s.io/v1');
  for (const key of Object.keys(pool.spec)) assert.ok(['selector', 'targetPorts', 'appProtocol', 'endpointPickerRef'].includes(key), `InferencePool spec field ${key}`);
  assert.deepEqual(pool.spec.selector.matchLabels, deployment.spec.template.metadata.labels);
  assert.deepEqual(pool.spec.targetPorts, [{ number: port }]);
  assert.ok(Number.isInteger(pool.spec.endpointPickerRef.port.number) && pool.spec.endpointPickerRef.name);
  assert.ok(['FailOpen', 'FailClose'].includes(pool.spec.endpointPickerRef.failureMode));
  const volumes = new Set(pod.volumes.map((v: { name: string }) => v.name));
  for (const mount of container.volumeMounts) assert.ok(volumes.has(mount.name), `volume ${mount.name}`);
  const adaptersMount = container.volumeMounts.find((m: { name: string }) => m.name === 'adapters').mountPath;
  assert.equal(container.args[container.args.indexOf('--lora-resolver-dir') + 1], adaptersMount);
  assert.equal(container.args[container.args.indexOf('--lora-allowed-dirs') + 1], adaptersMount);
});

test('the endpoint-picker config references declared plugins; the HPA scales on an exported gauge', () => {
  const epp = parse(find('ConfigMap').data['epp-config.yaml']);
  assert.equal(epp.kind, 'EndpointPickerConfig');
  const declared = new Set(epp.plugins.map((p: { type: string }) => p.type));
  for (const profile of epp.schedulingProfiles) for (const p of profile.plugins) assert.ok(declared.has(p.pluginRef), p.pluginRef);
  assert.ok(declared.has('lora-affinity-scorer'));
  const hpa = find('HorizontalPodAutoscaler');
  assert.equal(hpa.spec.scaleTargetRef.name, find('Deployment').metadata.name);
  const metric = hpa.spec.metrics[0].pods.metric.name;
  const registry = new ServerMetrics('base').registry;
  assert.equal(registry.getSingleMetric(metric)?.constructor.name, 'Gauge', `${metric} is a gauge of /metrics`);
});

test('the container flags pass the real serve option rules', async () => {
  const container = find('Deployment').spec.template.spec.containers[0];
  assert.deepEqual(container.command, ['tslora', 'serve']);
  // --replicas 0 fails the last rule checked, after every flag above it was parsed and checked: nothing loads.
  const result = await runCli(['serve', ...container.args, '--replicas', '0']);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /--replicas must be from 1 to 64 \(got 0\)/);
});
