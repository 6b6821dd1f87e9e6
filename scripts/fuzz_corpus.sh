#!/usr/bin/env bash
# Seeds for the fuzz targets (fuzz/), made from the repository's own files and small valid files
# of every format: scripts/fuzz_corpus.sh [DEST] -> DEST/FORMAT/* (default build-fuzz/seeds,
# git-ignored). Real tokenizer.json files (scripts/fetch_tokenizers.sh puts them in .tokenizers/)
# are cut down to a few hundred tokens with every component kept, when they are there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-build-fuzz/seeds}
rm -rf "$dest"
mkdir -p "$dest"
python3 - "$dest" <<'EOF'
import glob, json, os, shutil, struct, sys

dest = sys.argv[1]
def put(fmt, name, data):
    os.makedirs(os.path.join(dest, fmt), exist_ok=True)
    with open(os.path.join(dest, fmt, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
def copy(fmt, path, name=None):
    put(fmt, name or path.replace("/", "_"), open(path, "rb").read())

# config.json: every config in the tree (published models, demo, parity fixtures).
for p in sorted(glob.glob("configs/**/config.json", recursive=True) + glob.glob("tests/fixtures/parity/*/model/config.json")):
    copy("config", p)

# safetensors: the small fixture files, and hand-made ones of every dtype and corner.
for p in sorted(glob.glob("tests/fixtures/parity/*/inputs.safetensors") +
                glob.glob("tests/fixtures/parity/mqa_g1_sharded/model/model-0000[59]-*.safetensors")):
    copy("safetensors", p)
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, size in tensors:
        n = size
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes(range(n % 256)) + b"\x01" * (n - n % 256) if n else b""
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data
sizes = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
         "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
put("safetensors", "all_dtypes", safetensors([(f"t.{k}", k, [2, 1], v) for k, v in sizes.items()], {"format": "pt"}))
put("safetensors", "empty_tensors", safetensors([("a", "F32", [0, 4], 4), ("b", "BF16", [], 2)]))
put("safetensors", "no_tensors", safetensors([], {}))

# model.safetensors.index.json
copy("shard_index", "tests/fixtures/parity/mqa_g1_sharded/model/model.safetensors.index.json")
put("shard_index", "small", json.dumps({"metadata": {"total_size": 64},
    "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors",
                   "backbone.embeddings.weight": "model-00001-of-00002.safetensors"}}))

# Megatron .idx, each after the 8-byte size of its .bin.
def idx(code, lengths, docs, itemsize, modes=False):
    ptrs, p = [], 0
    for n in lengths:
        ptrs.append(p)
        p += n * itemsize
    body = b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, code, len(lengths), len(docs))
    body += struct.pack(f"<{len(lengths)}i", *lengths) + struct.pack(f"<{len(ptrs)}q", *ptrs)
    body += struct.pack(f"<{len(docs)}q", *docs) + (b"\x00" * len(lengths) if modes else b"")
    return struct.pack("<Q", p) + body
put("megatron_idx", "uint16_two_docs", idx(8, [5, 3, 4], [0, 2, 3], 2))
put("megatron_idx", "int32_one_doc", idx(4, [7], [0, 1], 4))
put("megatron_idx", "float64_modes", idx(6, [2, 2], [0, 1, 2], 8, modes=True))
put("megatron_idx", "empty", idx(1, [], [0], 1))

# importance.json for a three-layer model (Mamba, attention, MLP).
cfg = {"hybrid_override_pattern": "M*-", "vocab_size": 16, "hidden_size": 4, "intermediate_size": 6,
       "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 2, "mamba_num_heads": 2,
       "mamba_head_dim": 2, "ssm_state_size": 2, "n_groups": 1, "conv_kernel": 2, "chunk_size": 4}
put("config", "tiny", json.dumps(cfg))
vec = lambda n: [round(0.1 * (i + 1), 3) for i in range(n)]
imp = {"format": "minipuzzle-importance", "version": 1, "fingerprint": "0x00000000000000ab", "config": cfg,
       "settings": {"samples": 8, "layer_samples": 4, "seq_len": 16, "seed": 1, "aggregate_seq": "mean",
                    "aggregate_batch": "l2", "dtype": "fp32", "data": "tok", "stream": False},
       "full_loss": 2.5, "hidden": {"aggregate": vec(4), "per_layer": {str(i): vec(4) for i in range(3)}},
       "mlp": {"2": vec(6)}, "attention": {"1": vec(2)},
       "mamba": {"0": {"heads": 2, "head_dim": 2, "scores": vec(4)}},
       "layers": [{"index": i, "type": t, "mse_hidden": 0.1, "mse_normed": 0.2, "kl": 0.3, "loss_delta": 0.4,
                   "agreement": 0.9, "block_influence": 0.05} for i, t in enumerate(["mamba", "attention", "mlp"])]}
put("importance", "tiny", json.dumps(imp, indent=1))

# Shape files.
put("shape", "widths", json.dumps({"hidden_size": 2, "intermediate_size": 4, "num_attention_heads": 1,
                                   "mamba_num_heads": 1, "mamba_head_dim": 1, "name": "c1", "comment": "x"}))
put("shape", "counts", json.dumps({"layers": {"mamba": 1, "attention": 0, "mlp": 1}, "layer_metric": "kl"}))
put("shape", "kept", json.dumps({"kept_layers": [0, 2], "metadata": {"a": 1}}))
put("shape", "dropped", json.dumps({"drop_layers": [1], "layer_metric": "block_influence"}))

# Recipes and budgets.
for p in sorted(glob.glob("configs/recipes/*.json")):
    copy("recipe", p)
put("recipe", "hidden", json.dumps({"loss": "kl+ce", "hidden_loss": "cosine", "hidden_map": "0:1,1:3",
                                    "steps": 4, "global_batch": 4, "micro_batch": 2, "shard": "full"}))
for p in sorted(glob.glob("configs/budgets/*.json")):
    copy("budget", p)
put("budget", "fp8", json.dumps({"name": "b", "memory_limit_gib": 80, "weights": "fp8", "kv_cache": "bf16",
                                 "embeddings_bf16": True, "context_tokens": 8192, "batch": 4}))

# tokenizer.json: real files cut down (the first tokens of the vocabulary, the merges among them,
# every added token and component kept), and a minimal one of each kind written here.
for p in sorted(glob.glob(".tokenizers/*/tokenizer.json")):
    t = json.load(open(p, encoding="utf-8"))
    m = t["model"]
    keep = dict(sorted(m["vocab"].items(), key=lambda kv: kv[1])[:400])
    merges = []
    for mg in m.get("merges", []):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in keep and b in keep and a + b in keep:
            merges.append(mg)
    m["vocab"], m["merges"] = keep, merges[:200]
    t["added_tokens"] = t.get("added_tokens", [])[:8]
    put("tokenizer", os.path.basename(os.path.dirname(p)), json.dumps(t, ensure_ascii=False))
byte_vocab = {chr(c): i for i, c in enumerate(range(33, 127))}
put("tokenizer", "minimal_bpe", json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {**byte_vocab, "he": 94},
    "merges": ["h e"], "unk_token": "!"}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"},
    {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Digits",
    "individual_digits": True}, {"type": "Punctuation", "behavior": "Isolated"}]},
    "decoder": {"type": "BPEDecoder", "suffix": "</w>"},
    "post_processor": {"type": "BertProcessing", "sep": ["!", 0], "cls": ["\"", 1]},
    "added_tokens": [{"id": 95, "content": "<|endoftext|>", "special": True, "normalized": False,
                      "lstrip": True, "rstrip": False, "single_word": False}]}))
put("tokenizer", "metaspace", json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {"<unk>": 0,
    "\u2581": 1, "a": 2, "\u2581a": 3, "<0x41>": 4}, "merges": [["\u2581", "a"]], "unk_token": "<unk>",
    "byte_fallback": True, "fuse_unk": True}, "normalizer": {"type": "Replace", "pattern": {"Regex": "\\s+"},
    "content": " "}, "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
    "split": True}, "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"}]},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<unk>", "type_id": 0}},
    {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<unk>": {"id": "<unk>", "ids": [0],
    "tokens": ["<unk>"]}}}}, ensure_ascii=False))

# Benchmark tasks: the task JSON on one line, then its documents (JSONL). Each built-in task
# (eval/builtin_tasks.cpp) with its fixture documents (tests/fixtures/eval_tasks/, zero- and
# few-shot; a pool's rows join the documents, which the target also reads as the pool), cut to
# fit max_len; and task files of the other features (templates and filters, gold forms, samplers,
# delimiters).
import re
builtin = {n: json.loads(t) for n, t in
           re.findall(r'\{"(\w+)", R"\((.*?)\)"\}', open("eval/builtin_tasks.cpp").read(), re.S)}
def task(name, spec, docs):
    lines, size = [], len(json.dumps(spec)) + 1
    for row in docs:
        if size + len(row) + 1 > 12000:
            break
        lines.append(row)
        size += len(row) + 1
    put("task", name, json.dumps(spec) + "\n" + "\n".join(lines) + "\n")
for p in sorted(glob.glob("tests/fixtures/eval_tasks/*.docs.jsonl")):
    case = os.path.basename(p)[:-len(".docs.jsonl")]
    spec = dict(builtin[max((n for n in builtin if case.startswith(n)), key=len)], data=os.path.basename(p))
    shots = re.search(r"_(\d+)shot", case)
    if shots:
        spec["num_fewshot"] = int(shots.group(1))
        if os.path.exists(p.replace(".docs.", ".pool.")):
            spec["fewshot"] = dict(spec.get("fewshot", {}), data="pool.jsonl")
    rows = open(p, encoding="utf-8").read().splitlines()
    if os.path.exists(p.replace(".docs.", ".pool.")):  # the pool's rows join the documents
        rows += open(p.replace(".docs.", ".pool."), encoding="utf-8").read().splitlines()
    task(case, spec, rows)
docs = [json.dumps({"q": f"  Question {i}?  ", "s": "high_school_x" if i % 2 else "law", "c": {"t": ["a", "b", "c"]},
                    "g": ["yes", "no"][i % 2], "k": "b", "n": i % 2, "b": i % 2 == 0, "text": f"word {i}  and\tmore"})
        for i in range(6)]
task("templates", {"name": "t", "kind": "multiple_choice", "data": "d.jsonl",
    "description": "About {{s|replace('_', ' ')}}:\n", "prompt": "{{ q|strip }} {{c.t[1]}}{{n}}{{b}}",
    "choices": ["{{c.t[0]}}", "B", "{{g}}"], "gold": {"field": "g", "map": {"yes": 0, "no": 1}},
    "target_delimiter": "", "fewshot_delimiter": "\n---\n", "num_fewshot": 2,
    "fewshot": {"sampler": "random", "seed": 7}, "metrics": ["acc_norm"]}, docs)
task("index_in_same_field", {"name": "t", "kind": "multiple_choice", "data": "d.jsonl", "prompt": "{{q}}",
    "choices": {"field": "c.t"}, "gold": {"field": "k", "index_in": "c.t"}, "num_fewshot": 1,
    "fewshot": {"data": "pool.jsonl", "sampler": "first_n", "same_field": "s"}}, docs)
task("contexts", {"name": "t", "kind": "multiple_choice", "data": "d.jsonl", "choices_are_contexts": True,
    "choices": ["{{q}}", "{{g}}"], "target": "{{text}}", "gold": "n"}, docs)
task("loglikelihood", {"name": "t", "kind": "loglikelihood", "data": "d.jsonl", "prompt": "{{q}}",
    "target": " {{g}}", "num_fewshot": 3, "metrics": ["perplexity"]}, docs)
task("rolling_long", {"name": "t", "kind": "loglikelihood_rolling", "data": "d.jsonl", "target": "{{text}}"},
     [json.dumps({"text": "caf\u00e9 \u3000 " * 40}), json.dumps({"text": "x"})])
EOF
find "$dest" -type f | awk -F/ '{print $(NF-1)}' | sort | uniq -c | awk '{printf "%s: %s seeds\n", $2, $1}'
