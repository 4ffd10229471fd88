// report.html: one self-contained page (no network) about a run: the held-out
// before/after table, charts over steps (reward, held-out pass@1 and maj@k, format,
// response length, KL, entropy, throughput, language consistency), sampled completions
// before and after, and the resolved config. A staged run (R1's pipeline) also gets a
// table row per stage (id "stages") and each stage's curves (ids stage-<name>-<i>). The data sits in the page as JSON and a small script draws
// the charts as SVG; each chart's element gets data-drawn="<points>" once drawn.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace grpo {

// Reads <run>/config.yaml, metrics.jsonl, eval/{before,after}.json and their samples,
// and stages/<name>/ with eval/<name>.json (whatever exists) and writes
// <run>/report.html atomically.
absl::Status WriteRunReport(const std::string& run_dir);

}  // namespace grpo
