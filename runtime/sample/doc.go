// Package sample owns the last step of decoding: turning one position's
// next-token logits into a token id.
//
// A Sampler applies, in Hugging Face order, the repetition penalty, then
// either greedy argmax (Temperature == 0) or temperature scaling, top-k,
// softmax, top-p, min-p and one random draw. Draws come from a
// counter-based 32-bit hash (see Uniform), so a seeded run gives the same
// ids on every platform for the same logits, and a GPU shader can produce
// the same random numbers without 64-bit integer math.
//
// The package does not run models or own the vocabulary; it only sees
// logits and the ids generated so far.
package sample
