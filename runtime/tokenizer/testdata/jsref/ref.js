// ref.js computes reference tokenizations for runtime/tokenizer's Go tests.
//
// It reads one JSON request from stdin:
//   {"tokenizers": [{"name": "...", "file": "/path/tokenizer.json"}],
//    "texts": ["..."], "normalize": ["..."]}
// and writes to stdout, per tokenizer name:
//   {"ids": [[...]], "decoded": ["..."], "normalized": ["..."], "js_ids": [[...]]}
// "ids" and "decoded" come from the Rust tokenizers library (the reference):
// encode(text, add_special_tokens=false) and decode(ids, skip_special_tokens=false).
// "normalized" runs the tokenizer's normalizer on each "normalize" string.
// "js_ids" is the pure-JavaScript @huggingface/tokenizers port, reported by
// the Go test for information only.
'use strict';

const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const req = JSON.parse(fs.readFileSync(0, 'utf8'));
  let jsTokenizer = null;
  try {
    jsTokenizer = require('@huggingface/tokenizers').Tokenizer;
  } catch (e) {
    jsTokenizer = null;
  }
  const out = {};
  for (const spec of req.tokenizers) {
    const tok = Tokenizer.fromFile(spec.file);
    const res = { ids: [], decoded: [], normalized: [], js_ids: [] };
    for (const text of req.texts) {
      const enc = await tok.encode(text, null, { addSpecialTokens: false });
      const ids = Array.from(enc.getIds());
      res.ids.push(ids);
      res.decoded.push(await tok.decode(ids, false));
    }
    const norm = tok.getNormalizer();
    for (const text of req.normalize || []) {
      res.normalized.push(norm ? norm.normalizeString(text) : text);
    }
    if (jsTokenizer && spec.js_config) {
      try {
        const json = JSON.parse(fs.readFileSync(spec.file, 'utf8'));
        const cfg = JSON.parse(fs.readFileSync(spec.js_config, 'utf8'));
        const js = new jsTokenizer(json, cfg);
        for (const text of req.texts) {
          res.js_ids.push(Array.from(js.encode(text, { add_special_tokens: false }).ids));
        }
      } catch (e) {
        res.js_error = String(e && e.message || e);
      }
    }
    out[spec.name] = res;
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
