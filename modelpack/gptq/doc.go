// Package gptq quantises a model's matrices with error compensation
// (GPTQ): Collect runs the f32 model over calibration tokens and records
// the second moment of every matrix's inputs, and Quantize uses it to pick
// roundings whose errors cancel on those inputs, writing ordinary q8_0,
// q4_0 or q4_k tensors. `modelpack import --calib-self N` and `--calib FILE`
// use it through pack.Options.Quantizer.
package gptq
