// Package membw measures the machine's memory read bandwidth, the bound
// on decoding speed: a decode step reads every weight the token uses once,
// so tokens/s cannot exceed bandwidth / active bytes per token.
package membw
