#!/usr/bin/env python3
"""Parity of our model code with Hugging Face transformers, on the machine's torch.

For each architecture (llama, qwen2, qwen3), both ways:
  ours -> transformers: `grpo-parity write` makes a random model; transformers loads it.
  transformers -> ours: transformers makes a random model and saves it; ours loads it.
Then, on random token ids, the full-sequence logits of both must agree and so must 16
greedy tokens (ours through the Generator and its KV cache, transformers by repeated
full forward passes, so no generate() defaults get in the way). Checked on the CPU in
fp32, and where there is a GPU, ours on CUDA in fp32 and in bf16 against transformers
on CUDA in the same dtype.

Tolerances (stated in the report): fp32 max |logit difference| <= 1e-4 x (1 + max |logit|)
on the CPU and 1e-3 x (...) on CUDA, and greedy tokens equal. bf16 rounds differently
wherever two implementations order their operations differently, so bf16 is held to
transformers' own bf16 error: ours in bf16 may be at most 1.5x (plus one bf16 ulp of the
largest logit) as far from the fp32 logits as transformers in bf16 is. The direct
difference and the greedy tokens are reported too (a near-tie may flip in bf16).
Usage: parity.py --bin build/bin/grpo-parity --out report.json [--work DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM

STEPS = 16
SIZES = dict(vocab_size=384, hidden_size=128, intermediate_size=320, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
             rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)


def hf_config(arch):
    if arch == "llama":
        return transformers.LlamaConfig(
            **SIZES, rope_theta=500000.0, tie_word_embeddings=False, mlp_bias=True,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    if arch == "qwen2":
        return transformers.Qwen2Config(**SIZES, rope_theta=1e6, tie_word_embeddings=True)
    if arch == "qwen3":
        return transformers.Qwen3Config(**SIZES, rope_theta=1e6, tie_word_embeddings=False, head_dim=48)
    raise ValueError(arch)


def load_hf(path, dtype, device):
    try:
        m = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager")
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype, attn_implementation="eager")
    return m.to(device).eval()


def hf_run(model, seqs, device):
    """Full-sequence logits and greedy tokens by repeated full forward passes."""
    out = []
    with torch.no_grad():
        for ids in seqs:
            x = torch.tensor([ids], device=device)
            logits = model(x).logits[0].float().cpu()
            ctx = list(ids)
            greedy, margins = [], []
            for _ in range(STEPS):
                last = model(torch.tensor([ctx], device=device)).logits[0, -1].float().cpu()
                top = torch.topk(last, 2).values
                margins.append(float(top[0] - top[1]))
                t = int(last.argmax())
                greedy.append(t)
                ctx.append(t)
            out.append((logits, greedy, margins))
    return out


def ours_run(binary, path, seqs, device, dtype, work):
    out_file = os.path.join(work, "ours.json")
    ids = ";".join(",".join(str(t) for t in s) for s in seqs)
    r = subprocess.run([binary, "run", "--model", path, "--ids", ids, "--steps", str(STEPS), "--device", device,
                        "--dtype", dtype, "--out", out_file], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"grpo-parity run failed ({r.returncode}): {r.stderr.strip()}")
    with open(out_file) as f:
        data = json.load(f)
    res = []
    for s in data["sequences"]:
        t, v = s["shape"]
        res.append((torch.tensor(s["logits"], dtype=torch.float32).view(t, v), s["greedy"]))
    return res


def compare(hf, ours, dtype, on_cuda, fp32_ref=None):
    worst_abs, worst_rel, scale_max = 0.0, 0.0, 0.0
    err_ours, err_hf = 0.0, 0.0
    if fp32_ref is not None:
        for (hl, _, _), (ol, _), (rl, _, _) in zip(hf, ours, fp32_ref):
            err_ours = max(err_ours, (ol - rl).abs().max().item())
            err_hf = max(err_hf, (hl - rl).abs().max().item())
    greedy_ok, first_diff = True, []
    for (hl, hg, margins), (ol, og) in zip(hf, ours):
        d = (hl - ol).abs().max().item()
        worst_abs = max(worst_abs, d)
        scale_max = max(scale_max, hl.abs().max().item())
        worst_rel = max(worst_rel, d / hl.std().item())
        if hg != og:
            greedy_ok = False
            i = next(i for i in range(min(len(hg), len(og))) if hg[i] != og[i]) if len(hg) == len(og) else -1
            first_diff.append({"position": i, "margin_there": margins[i] if i >= 0 else None})
    extra = {}
    if dtype == "bf16":
        ulp = 2.0 ** -7 * scale_max  # bf16 keeps 8 significant bits
        tol = 1.5 * err_hf + ulp
        ok = err_ours <= tol
        rule = f"max |ours_bf16 - fp32| ({err_ours:.4g}) <= 1.5 x max |transformers_bf16 - fp32| ({err_hf:.4g}) + 1 ulp"
        extra = {"ours_bf16_error": err_ours, "transformers_bf16_error": err_hf}
    else:
        tol = (1e-3 if on_cuda else 1e-4) * (1 + scale_max)
        ok = worst_abs <= tol and greedy_ok
        rule = f"max |diff| <= {tol:.3g} and greedy tokens equal"
    return {"ok": ok, "max_abs_diff": worst_abs, "max_rel_diff_of_std": worst_rel, "max_abs_logit": scale_max,
            "rule": rule, "greedy_equal": greedy_ok, "greedy_first_differences": first_diff, **extra}


def randomize(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="parity-")
    gen = torch.Generator().manual_seed(1234)
    seqs = [torch.randint(3, SIZES["vocab_size"], (n,), generator=gen).tolist() for n in (37, 90)]
    cuda = torch.cuda.is_available()
    report = {"torch": torch.__version__, "transformers": transformers.__version__, "cuda": cuda,
              "sequences": [len(s) for s in seqs], "greedy_steps": STEPS, "checks": []}
    for arch in ("llama", "qwen2", "qwen3"):
        for direction in ("ours_to_transformers", "transformers_to_ours"):
            path = os.path.join(work, f"{arch}-{direction}")
            entry = {"arch": arch, "direction": direction, "runs": []}
            try:
                if direction == "ours_to_transformers":
                    r = subprocess.run([args.bin, "write", "--arch", arch, "--out", path], capture_output=True,
                                       text=True, timeout=120)
                    if r.returncode != 0:
                        raise RuntimeError(f"grpo-parity write failed: {r.stderr.strip()}")
                else:
                    cfg = hf_config(arch)
                    try:
                        m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
                    except TypeError:
                        m = AutoModelForCausalLM.from_config(cfg)
                    randomize(m)
                    m.save_pretrained(path, safe_serialization=True)
                setups = [("cpu", "f32", torch.float32)]
                if cuda:
                    setups += [("cuda", "f32", torch.float32), ("cuda", "bf16", torch.bfloat16)]
                ref = {}
                for device, dname, tdtype in setups:
                    hf = hf_run(load_hf(path, tdtype, device), seqs, device)
                    if dname == "f32":
                        ref[device] = hf
                    ours = ours_run(args.bin, path, seqs, device, dname, work)
                    res = compare(hf, ours, dname, device == "cuda", ref.get(device) if dname == "bf16" else None)
                    res.update({"device": device, "dtype": dname})
                    entry["runs"].append(res)
                entry["ok"] = all(r["ok"] for r in entry["runs"])
            except Exception as e:  # one failure must not hide the other checks
                entry["ok"] = False
                entry["error"] = f"{type(e).__name__}: {e}"
                entry["traceback"] = traceback.format_exc()[-2000:]
            report["checks"].append(entry)
            print(f"parity {arch} {direction}: {'ok' if entry['ok'] else 'FAILED'} "
                  + "; ".join(f"{r['device']}/{r['dtype']} max diff {r['max_abs_diff']:.2e} greedy "
                              f"{'=' if r['greedy_equal'] else '!='}" for r in entry["runs"])
                  + (f" {entry.get('error')}" if "error" in entry else ""), flush=True)
    report["ok"] = all(c["ok"] for c in report["checks"])
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
