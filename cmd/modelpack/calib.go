package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/moderuntime/mode/modelpack/distill"
	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// tokenizerFunc opens the tokenizer that calibration text is encoded with
// and says whether sequences start with BOS; it is only called for a text.
type tokenizerFunc func() (tok tokenizer.Tokenizer, addBOS bool, err error)

// inputTokenizer is the tokenizer an importer found beside the model.
func inputTokenizer(in *importer.Input, vocab int) tokenizerFunc {
	return func() (tokenizer.Tokenizer, bool, error) {
		tk, err := tokenizer.Load(in.Tokenizer.Kind, in.Tokenizer.File, in.Tokenizer.Config, vocab)
		return tk, in.Tokenizer.AddBOS, err
	}
}

// calibration returns the token sequences of a calibration text file, or
// n sequences sampled from m itself when file is "".
func calibration(tok tokenizerFunc, m *model.Model, file string, n, seqLen int, seed uint64, threads int, stderr io.Writer) ([][]int, error) {
	if file == "" {
		fmt.Fprintf(stderr, "sampling %d sequences of %d tokens from the model\n", n, seqLen)
		return distill.SelfGenerate(context.Background(), m, n, seqLen, seed, threads)
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--calib: %w", err)
	}
	tk, addBOS, err := tok()
	if err != nil {
		return nil, err
	}
	ids := tk.Encode(string(text))
	if len(ids) == 0 {
		return nil, fmt.Errorf("--calib %s: no tokens (the file is empty)", file)
	}
	if bos := tk.BOS(); addBOS && bos >= 0 {
		ids = append([]int{bos}, ids...)
	}
	seqs := distill.Chunk(ids, min(seqLen, m.Config.MaxSeq))
	if len(seqs) == 0 {
		return nil, fmt.Errorf("--calib %s: too few tokens", file)
	}
	return seqs, nil
}
