// node same-rules.mjs RENDERED.yaml ALERTS.yml: the rendered PrometheusRule must carry
// exactly the plain Prometheus rule groups (deploy/prometheus/alerts.yml).
import { readFileSync } from "node:fs";
import { parseAllDocuments, parse } from "yaml";
const rendered = parseAllDocuments(readFileSync(process.argv[2], "utf8")).map((d) => d.toJS());
const rule = rendered.find((o) => o && o.kind === "PrometheusRule");
const plain = parse(readFileSync(process.argv[3], "utf8"));
// kustomize sorts keys: compare with keys in order.
const canon = (v) =>
  Array.isArray(v) ? v.map(canon)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]))
  : v;
if (!rule || JSON.stringify(canon(rule.spec.groups)) !== JSON.stringify(canon(plain.groups))) {
  console.error("the PrometheusRule differs from deploy/prometheus/alerts.yml");
  process.exit(1);
}
