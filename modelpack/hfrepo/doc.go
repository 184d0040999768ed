// Package hfrepo opens a Hugging Face model repository by its id, with no
// conversion step: `hf:ORG/REPO[@REVISION]` names it, and Open reads the
// repository's small JSON files and each safetensors file's header (two
// Range requests per file), maps the tensors to canonical names with
// modelpack/hf, and builds in memory the manifest `modelpack index` would
// write, every piece pointing into the files at the resolved commit. It
// refuses what it cannot run (architecture, dtype, a missing tensor, a
// repository with only .bin weights, a header whose offsets lie, a server
// that ignores Range) before any weight is downloaded. runtime/loader then
// fetches the always-used tensors and, on first use, each routed expert's
// byte ranges, and converts them to the session's format (Quant) as they
// arrive. Tensors a checkpoint stores fused (gpt-oss's experts: gate and
// up interleaved, input-major or MXFP4) are fetched as each expert's
// contiguous slice of the fused tensors and rearranged on arrival
// (Repo.Rearrange). With no per-tensor hash to check, each range answer must carry
// the ETag its file's header came with (Repo.ETag), so bytes of another
// version of a file never mix in; whole small files are checked against
// the hub's X-Linked-Etag or git-sha1 ETag. With Options.Keep the answers
// an index was built from are kept per commit and replayed, through the
// same checks, on the next Index of that commit: no request for a location
// naming the commit, one (config.json, for X-Repo-Commit) for a branch.
package hfrepo
