#!/usr/bin/env python3
"""The other side of `minipuzzle eval-tasks` parity: transformers' NemotronH scores the requests
that eval-tasks logged (--log-samples), tokenized by the lm-evaluation-harness's rules (restated
here from lm_eval/api/model.py, lm_eval/models/huggingface.py and lm_eval/utils.py), and every
per-request log-likelihood must equal minipuzzle's within a relative error of --tol; acc and
acc_norm per document and per task must be identical.

    python3 scripts/parity/eval_tasks_reference.py --model DIR --samples OUT.samples.jsonl \
        --results OUT.json --max-length N [--tol 1e-5]

The harness's tokenization, for a causal model with the checkpoint's AutoTokenizer:
  encode(s)         tokenizer.encode(s) (special tokens as the tokenizer adds them), or without
                    special tokens when s starts with the text of the prefix token
  prefix token      BOS, else EOS
  (ctx, cont)       trailing whitespace of ctx moves to cont; whole = encode(ctx + cont),
                    c = encode(ctx), cont tokens = whole[len(c):]; an empty ctx becomes [prefix]
                    (or the continuation's first token when that is the prefix token)
  scoring           inputs (c + cont)[-(max_length + 1):][:-1], log_softmax over the vocabulary,
                    the last len(cont) positions
  rolling           encode(text) in windows of max_length predictions, the first after [prefix],
                    each later one after the max_length + 1 - len(window) tokens before it
The reference runs on the CPU in float32 with eager attention, one request at a time.
"""
import argparse
import json
import math
import sys

import tokenizers
import torch
from transformers import AutoTokenizer, NemotronHForCausalLM


class HarnessTokens:
    def __init__(self, model_dir):
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.prefix = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
        self.prefix_text = self.tok.decode([self.prefix]) if self.prefix is not None else None
        # The tokenizer.json itself through Hugging Face tokenizers: when ids differ, says whether
        # AutoTokenizer (what the harness uses) departs from the file.
        self.raw = tokenizers.Tokenizer.from_file(model_dir + "/tokenizer.json")

    def encode(self, s):
        if self.prefix_text and s.startswith(self.prefix_text):
            return self.tok.encode(s, add_special_tokens=False)
        return self.tok.encode(s)

    def pair(self, ctx, cont, max_length):
        if ctx == "":
            c = self.tok.encode(cont, add_special_tokens=False)
            ctx_ids, cont_ids = ([self.prefix], c) if c[0] != self.prefix else (c[:1], c[1:])
        else:
            n = len(ctx) - len(ctx.rstrip())
            if n:
                cont = ctx[-n:] + cont
                ctx = ctx[:-n]
            whole = self.encode(ctx + cont)
            ctx_ids = self.encode(ctx)
            cont_ids = whole[len(ctx_ids):]
        return ctx_ids, cont_ids

    def rolling(self, text, max_length):
        toks = self.encode(text)
        first = min(max_length, len(toks))
        windows = [([self.prefix], toks[:first])]
        done = first
        while done < len(toks):
            n = min(len(toks) - done, max_length)
            end = done + n
            windows.append((toks[end - max_length - 1:end - n], toks[end - n:end]))
            done = end
        return windows


@torch.no_grad()
def score(model, ctx_ids, cont_ids, max_length):
    seq = (ctx_ids + cont_ids)[-(max_length + 1):][:-1]
    logits = model(input_ids=torch.tensor([seq])).logits[0].float()
    lp = torch.log_softmax(logits, -1)[-len(cont_ids):]
    target = torch.tensor(cont_ids)
    ll = lp.gather(1, target.unsqueeze(1)).sum().item()
    greedy = bool((lp.argmax(-1) == target).all())
    return ll, greedy


def first_argmax(v):
    return max(range(len(v)), key=lambda i: (v[i], -i))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--max-length", type=int, required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    a = ap.parse_args()
    toks = HarnessTokens(a.model)
    model = NemotronHForCausalLM.from_pretrained(a.model, dtype=torch.float32).float().eval()
    model.set_attn_implementation("eager")
    results = json.load(open(a.results))["results"]
    worst, n_req, id_mismatch, bad_ll, bad_greedy, bad_acc = 0.0, 0, 0, 0, 0, 0
    acc = {}
    for line in open(a.samples, encoding="utf-8"):
        rec = json.loads(line)
        lls, greedy = [], []
        for q in rec["requests"]:
            if "token_ids" in q:  # rolling
                windows = toks.rolling(q["continuation"], a.max_length)
                ids = [t for _, c in windows for t in c]
                if ids != q["token_ids"]:
                    id_mismatch += 1
                    print(f"ids differ: {rec['task']} {rec['where']}: ours {q['token_ids'][:12]}... reference {ids[:12]}...")
                ll, g = 0.0, True
                for c, p in windows:
                    x, y = score(model, c, p, a.max_length)
                    ll, g = ll + x, g and y
            else:
                c, p = toks.pair(q["context"], q["continuation"], a.max_length)
                if c[-(a.max_length + 1 - len(p)):] != q["context_ids"] or p != q["continuation_ids"]:
                    id_mismatch += 1
                    raw = toks.raw.encode(q["context"] + q["continuation"]).ids
                    print(f"ids differ: {rec['task']} {rec['where']}: continuation ours {q['continuation_ids']} "
                          f"reference {p}; tokenizers on the whole text: {raw[-len(p) - 2:]}")
                ll, g = score(model, c, p, a.max_length)
            err = abs(q["loglikelihood"] - ll) / max(abs(ll), 1e-30)
            worst = max(worst, err)
            n_req += 1
            if err > a.tol:
                bad_ll += 1
                print(f"log-likelihood differs: {rec['task']} {rec['where']}: ours {q['loglikelihood']:.8g} "
                      f"transformers {ll:.8g} (rel {err:.2e})")
            if g != q["is_greedy"]:
                bad_greedy += 1
                print(f"greedy flag differs: {rec['task']} {rec['where']}")
            lls.append(ll)
            greedy.append(g)
        m = {}
        if "choices" in rec:
            m["acc"] = float(first_argmax(lls) == rec["gold"])
            m["acc_norm"] = float(first_argmax([l / len(c) for l, c in zip(lls, rec["choices"])]) == rec["gold"])
        elif rec["task"].startswith("lambada") or "words" not in rec:
            m["acc"] = float(greedy[0])
        for k, v in m.items():
            if rec["metrics"].get(k) != v:
                bad_acc += 1
                print(f"{k} differs: {rec['task']} {rec['where']}: ours {rec['metrics'].get(k)} transformers {v}")
            acc.setdefault((rec["task"], k), []).append(v)
    for (task, k), vals in sorted(acc.items()):
        if k not in results[task]["metrics"]:
            continue
        ours = results[task]["metrics"][k]["value"]
        ref = sum(vals) / len(vals)
        same = ours == ref
        bad_acc += not same
        print(f"{'same' if same else 'DIFFERENT'} {task} {k}: ours {ours:.6f} transformers {ref:.6f} ({len(vals)} docs)")
    ok = bad_ll == 0 and bad_greedy == 0 and bad_acc == 0 and id_mismatch == 0
    print(f"{'PASS' if ok else 'FAIL'} {a.samples}: {n_req} requests, worst relative log-likelihood error {worst:.2e} "
          f"(tol {a.tol:g}); {id_mismatch} token mismatches, {bad_ll} log-likelihoods, {bad_greedy} greedy flags, "
          f"{bad_acc} accuracies differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
