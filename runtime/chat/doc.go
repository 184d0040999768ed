// Package chat renders Hugging Face chat templates: the Jinja program stored
// as "chat_template" in a model's tokenizer_config.json, which turns a list
// of messages into the exact prompt text the model was trained on.
//
// The package owns a small, self-contained Jinja interpreter covering the
// subset real chat templates use (statements if/for/set/macro, expressions,
// filters, tests and the Python string methods templates call). It renders
// the way Hugging Face does: trim_blocks and lstrip_blocks are on, a single
// trailing newline of the template is dropped, undefined variables render as
// the empty string and are falsy. Where Python Jinja and @huggingface/jinja
// (the JavaScript port transformers.js uses) disagree on how a value prints,
// this package follows @huggingface/jinja, which the tests compare against
// byte for byte: true/false print in lower case, none prints as "", lists
// and dicts print as JSON. String length and indexing count code points as
// Python does; @huggingface/jinja counts UTF-16 units, so the two differ on
// characters outside the Basic Multilingual Plane.
//
// Rendering is bounded: output size, loop iterations and macro recursion are
// capped so that a hostile template fails with an error instead of hanging
// or exhausting memory. The package uses only the standard library so it
// builds for js/wasm and wasip1/wasm.
package chat
