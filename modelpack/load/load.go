package load

import (
	"fmt"

	"github.com/moderuntime/mode/modelpack/importer"
	"github.com/moderuntime/mode/modelpack/source"
	"github.com/moderuntime/mode/runtime/model"
	"github.com/moderuntime/mode/runtime/tokenizer"
)

// Loaded is a model ready to run.
type Loaded struct {
	Model     *model.Model
	Tokenizer tokenizer.Tokenizer
	// AddBOS says whether prompts start with the BOS token.
	AddBOS bool
	// ChatTemplate is the Jinja chat template, "" when the model has none.
	ChatTemplate string
}

// Open loads the model at path — an HF directory, a GGUF file or a
// llama2.c checkpoint — whole into memory, with its tokenizer. tokPath
// overrides the tokenizer file ("" looks beside the model).
func Open(path, tokPath string) (*Loaded, error) {
	in, err := importer.Open(path, tokPath)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	m, err := Model(in.Source)
	if err != nil {
		return nil, err
	}
	cfg := m.Config
	if err := m.Validate(false); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tok, err := tokenizer.Load(in.Tokenizer.Kind, in.Tokenizer.File, in.Tokenizer.Config, cfg.Vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", path, err)
	}
	return &Loaded{Model: m, Tokenizer: tok, AddBOS: in.Tokenizer.AddBOS, ChatTemplate: in.ChatTemplate}, nil
}

// Model reads every tensor of src into memory, or returns the model a
// source.ModelSource already holds.
func Model(src source.Source) (*model.Model, error) {
	if ms, ok := src.(source.ModelSource); ok {
		return ms.M, nil
	}
	cfg := src.Config()
	w := model.Weights{}
	for _, sp := range cfg.Spec() {
		t, err := src.Read(sp.Name, 0, 0)
		if err != nil {
			return nil, err
		}
		w[sp.Name] = t
	}
	return &model.Model{Config: cfg, Weights: w}, nil
}
