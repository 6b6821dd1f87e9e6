#!/usr/bin/env node
// Reference ids from Hugging Face `tokenizers` (the npm build @anush008/tokenizers, which wraps
// the Rust library) for checking minipuzzle's native tokenizer.
//
//   tokenizer_reference.js fixture TOKENIZER_JSON NAME HARD_CASES [TEXT_FILE...] > fixture.json
//       ids of each line of HARD_CASES (without, then with special tokens), their decoding, and
//       the ids of each TEXT_FILE as one document
//   tokenizer_reference.js compare TOKENIZER_JSON PREFIX FILE...
//       compares the documents of a minipuzzle token dataset (PREFIX.bin/.idx, written by
//       `minipuzzle data from-text FILE... --no-eod`) with the reference ids of each FILE
//   tokenizer_reference.js speed TOKENIZER_JSON FILE...
//       one-thread encoding speed over the files (each file one document), as JSON
//
// The module is looked up in NODE_PATH (scripts/fetch_tokenizers.sh installs it).
'use strict';
const fs = require('fs');
const path = require('path');
const {Tokenizer} = require('@anush008/tokenizers');

async function encode(tok, text, special) {
  const e = await tok.encode(text, null, {addSpecialTokens: special});
  return Array.from(e.getIds());
}

function readIdx(prefix) {
  const b = fs.readFileSync(prefix + '.idx');
  if (b.subarray(0, 9).toString('latin1') !== 'MMIDIDX\x00\x00') throw new Error(prefix + '.idx: bad magic');
  let o = 9 + 8;
  const dtype = b.readUInt8(o); o += 1;
  const nseq = Number(b.readBigUInt64LE(o)); o += 8;
  const ndoc = Number(b.readBigUInt64LE(o)); o += 8;
  const lengths = []; for (let i = 0; i < nseq; ++i) { lengths.push(b.readInt32LE(o)); o += 4; }
  const pointers = []; for (let i = 0; i < nseq; ++i) { pointers.push(Number(b.readBigInt64LE(o))); o += 8; }
  const docs = []; for (let i = 0; i < ndoc; ++i) { docs.push(Number(b.readBigInt64LE(o))); o += 8; }
  return {dtype, lengths, pointers, docs};
}

function sequenceIds(bin, idx, s) {
  const width = idx.dtype === 8 ? 2 : 4;
  const out = new Array(idx.lengths[s]);
  for (let i = 0; i < idx.lengths[s]; ++i) {
    const at = idx.pointers[s] + i * width;
    out[i] = width === 2 ? bin.readUInt16LE(at) : bin.readInt32LE(at);
  }
  return out;
}

async function main() {
  const [mode, tokPath, ...rest] = process.argv.slice(2);
  const tok = await Tokenizer.fromFile(tokPath);
  if (mode === 'fixture') {
    const [name, hardCases, ...files] = rest;
    const lines = fs.readFileSync(hardCases, 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const out = {tokenizer: name, hard_cases: path.basename(hardCases), lines: [], documents: []};
    for (const line of lines) {
      const ids = await encode(tok, line, false);
      out.lines.push({ids, ids_special: await encode(tok, line, true), decoded: await tok.decode(ids, false)});
    }
    for (const f of files) out.documents.push({file: path.basename(f), ids: await encode(tok, fs.readFileSync(f, 'utf8'), false)});
    process.stdout.write('{"tokenizer":' + JSON.stringify(out.tokenizer) + ',"hard_cases":' + JSON.stringify(out.hard_cases) +
      ',\n"lines":[\n' + out.lines.map((l) => JSON.stringify(l)).join(',\n') + '],\n"documents":[\n' +
      out.documents.map((d) => JSON.stringify(d)).join(',\n') + ']}\n');
  } else if (mode === 'compare') {
    const [prefix, ...files] = rest;
    const idx = readIdx(prefix);
    const bin = fs.readFileSync(prefix + '.bin');
    if (idx.docs.length - 1 !== files.length) throw new Error(`${prefix}: ${idx.docs.length - 1} documents for ${files.length} files`);
    let mismatched = 0, tokens = 0, bytes = 0;
    for (let d = 0; d < files.length; ++d) {
      const text = fs.readFileSync(files[d], 'utf8');
      bytes += Buffer.byteLength(text);
      const want = await encode(tok, text, false);
      let got = [];
      for (let s = idx.docs[d]; s < idx.docs[d + 1]; ++s) got = got.concat(sequenceIds(bin, idx, s));
      tokens += want.length;
      let first = -1;
      for (let i = 0; i < Math.max(want.length, got.length); ++i) if (want[i] !== got[i]) { first = i; break; }
      if (first >= 0) {
        mismatched += 1;
        console.error(`${files[d]}: first difference at token ${first}: want ${JSON.stringify(want.slice(first, first + 8))} got ${JSON.stringify(got.slice(first, first + 8))}`);
      }
    }
    console.log(JSON.stringify({tokenizer: tokPath, documents: files.length, bytes, tokens, mismatched_documents: mismatched}));
    process.exitCode = mismatched ? 1 : 0;
  } else if (mode === 'speed') {
    const texts = rest.map((f) => fs.readFileSync(f, 'utf8'));
    const bytes = texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
    const t0 = process.hrtime.bigint();
    let tokens = 0;
    for (const t of texts) tokens += (await encode(tok, t, false)).length;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({implementation: 'hf-tokenizers (node @anush008/tokenizers 0.6.0)', tokenizer: tokPath, bytes, tokens, seconds: s, mb_per_s: bytes / 1e6 / s}));
  } else {
    console.error('usage: tokenizer_reference.js fixture|compare|speed TOKENIZER_JSON ...');
    process.exitCode = 2;
  }
}
main().catch((e) => { console.error(e.message || e); process.exitCode = 1; });
