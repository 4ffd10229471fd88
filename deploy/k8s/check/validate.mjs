// Validates Kubernetes objects offline against their schemas (kubernetes-models, and
// @kubernetes-models/prometheus-operator for PodMonitor and PrometheusRule).
//   node validate.mjs [--policy] FILE.yaml...   (multi-document YAML, e.g. `kustomize build` output)
// Prints one line per object; exits 1 naming every object that does not validate (or
// whose apiVersion/kind has no schema here), 0 when all do. --policy also holds every
// workload to this project's rules: requests and limits, startup/readiness/liveness
// probes, non-root, no privilege escalation, all capabilities dropped, a read-only root
// and the RuntimeDefault seccomp profile; the one exception (the reward servers'
// sandbox: seccomp Unconfined, AppArmor unconfined) must be the reward pod's alone.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// apiVersion -> the module with its models.
function moduleFor(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

let bad = 0;
let total = 0;
const counts = {};
const args = process.argv.slice(2);
const policy = args[0] === "--policy";
const files = policy ? args.slice(1) : args;

// The project's rules for a workload's pod template; returns the violations.
function policyProblems(obj) {
  const spec = obj.spec?.template?.spec;
  if (!spec) return [];
  const out = [];
  const pod = spec.securityContext ?? {};
  const sandbox = obj.metadata?.name === "reward";
  if (pod.runAsNonRoot !== true) out.push("pod securityContext.runAsNonRoot is not true");
  const seccomp = pod.seccompProfile?.type;
  if (sandbox ? seccomp !== "Unconfined" : seccomp !== "RuntimeDefault") {
    out.push(`seccompProfile ${seccomp} (RuntimeDefault; Unconfined only for the reward sandbox)`);
  }
  for (const c of spec.containers ?? []) {
    const sc = c.securityContext ?? {};
    const r = c.resources ?? {};
    if (!r.requests?.cpu || !r.requests?.memory || !r.limits?.cpu || !r.limits?.memory) out.push(`${c.name}: cpu and memory requests and limits`);
    for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) if (!c[p]) out.push(`${c.name}: no ${p}`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${c.name}: allowPrivilegeEscalation is not false`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${c.name}: readOnlyRootFilesystem is not true`);
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) out.push(`${c.name}: capabilities not all dropped`);
    if (sc.privileged) out.push(`${c.name}: privileged`);
    if ((sc.capabilities?.add ?? []).length) out.push(`${c.name}: adds capabilities`);
  }
  const apparmor = Object.entries(obj.spec.template.metadata?.annotations ?? {}).filter(([k]) => k.startsWith("container.apparmor"));
  if (apparmor.length && !sandbox) out.push("AppArmor annotations outside the reward sandbox");
  return out;
}

for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length) {
      console.log(`${file}: YAML error: ${doc.errors[0].message}`);
      bad++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    total++;
    const what = `${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"} (${obj.apiVersion ?? "?"})`;
    let models;
    try {
      models = await import(moduleFor(String(obj.apiVersion)));
    } catch (e) {
      console.log(`${file}: ${what}: no schema for apiVersion ${obj.apiVersion}`);
      bad++;
      continue;
    }
    const Model = models[obj.kind];
    if (typeof Model !== "function") {
      console.log(`${file}: ${what}: no schema for kind ${obj.kind}`);
      bad++;
      continue;
    }
    try {
      new Model(obj).validate();
      counts[obj.kind] = (counts[obj.kind] ?? 0) + 1;
      if (policy) {
        for (const p of policyProblems(obj)) {
          console.log(`${file}: ${what}: policy: ${p}`);
          bad++;
        }
      }
    } catch (e) {
      const details = (e.errors ?? []).map((x) => `${x.instancePath || "/"} ${x.message}`).join("; ");
      console.log(`${file}: ${what}: ${details || e.message}`);
      bad++;
    }
  }
}
console.log(`${total} objects: ${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ")}`);
if (bad > 0) {
  console.log(`${bad} object(s) failed validation`);
  process.exit(1);
}
