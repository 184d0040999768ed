package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moderuntime/mode/runtime/model"

	"github.com/moderuntime/mode/internal/jsondepth"
)

// NameMap maps a checkpoint's tensor names to canonical names.
type NameMap map[string]string

// ModelTypes lists the model_type values Load understands.
func ModelTypes() []string {
	return []string{"llama", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "granitemoeshared", "gpt_oss", "deepseek_v2", "deepseek_v3", "mode"}
}

// Limits on config values beyond those model.Config.Validate enforces,
// checked before any per-layer or per-expert slices are built.
const (
	maxLayers  = 4096
	maxExperts = 8192
)

// LoadConfig translates the bytes of a config.json into a model.Config and
// the map from the checkpoint's tensor names to canonical ones. The config
// assumes an untied output head unless tie_word_embeddings says otherwise;
// Load also ties it when the checkpoint has no lm_head.weight, as
// transformers then does. gpt_oss's routed experts and their gate/up biases
// are not in the map: Open cuts them out of the checkpoint's fused tensors.
func LoadConfig(configJSON []byte) (model.Config, NameMap, error) {
	p, err := parseConfig(configJSON)
	if err != nil {
		return model.Config{}, nil, fmt.Errorf("hf: %w", err)
	}
	return p.cfg, p.names, nil
}

// plan is everything the loader needs to know about one checkpoint before
// reading a tensor.
type plan struct {
	cfg    model.Config
	names  NameMap
	native bool // model_type "mode": canonical names, no transformers conventions
	// ignore holds checkpoint tensors that have no place in the model and
	// carry no information: rotary inv_freq buffers, and lm_head.weight
	// when the head is tied (transformers then ignores it too).
	ignore map[string]bool
	// zeroOnly holds tensors transformers has but model.Config cannot
	// represent; they are accepted only when all zero, which is exact.
	zeroOnly map[string]string // name -> what it is
	// parts holds canonical tensors that are rows of a fused checkpoint
	// tensor (Granite's experts); they are not in names.
	parts map[string]Part
	// derived holds canonical tensors cut out of a checkpoint's fused
	// tensors (gpt-oss's experts), and sources the fused tensors they
	// come from; resolve fills both.
	derived map[string]derivedRef
	sources map[string]bool
	arch    string
	// ignorePrefixes are name prefixes of checkpoint tensors with no place
	// in the model that carry nothing it uses: DeepSeek-V3's
	// multi-token-prediction layers after the last decoder layer.
	ignorePrefixes []string
}

func (p *plan) ignoredPrefix(name string) bool {
	return slices.ContainsFunc(p.ignorePrefixes, func(pre string) bool { return strings.HasPrefix(name, pre) })
}

// parseConfig dispatches on model_type. Its errors start with
// "config.json:" and name the offending key.
func parseConfig(raw []byte) (*plan, error) {
	if err := jsondepth.Check(raw, jsondepth.Max); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	var head struct {
		ModelType     string          `json:"model_type"`
		Architectures []string        `json:"architectures"`
		Mode          json.RawMessage `json:"mode"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if head.ModelType == "" {
		return nil, errors.New("config.json: model_type is missing")
	}
	if head.ModelType == "mode" {
		return parseMode(head.Mode)
	}
	if !slices.Contains(ModelTypes(), head.ModelType) {
		return nil, fmt.Errorf("config.json: model_type %q is not supported (supported: %s)", head.ModelType, strings.Join(ModelTypes(), ", "))
	}
	if len(head.Architectures) > 0 && !slices.ContainsFunc(head.Architectures, func(a string) bool { return strings.HasSuffix(a, "ForCausalLM") }) {
		// A classification or embedding head has tensors with no place here.
		return nil, fmt.Errorf("config.json: architectures %v: only a ...ForCausalLM model can be loaded", head.Architectures)
	}
	var h hfConfig
	if err := json.Unmarshal(raw, &h); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("config.json: %s is a JSON %s, want %v", te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("config.json: %w", err)
	}
	cfg, err := h.modelConfig(head.ModelType)
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	p := &plan{cfg: cfg, names: hfNames(head.ModelType, &cfg), ignore: map[string]bool{}, zeroOnly: map[string]string{}, arch: head.ModelType}
	if isGranite(head.ModelType) {
		p.parts = graniteParts(&cfg)
	}
	if cfg.TiedOutput {
		p.ignore["lm_head.weight"] = true
	}
	if n := h.DS.NextNPredictions; isDeepSeek(head.ModelType) && n != nil && *n > 0 && *n <= maxLayers {
		// modeling_deepseek.py does not build them (load-time warnings
		// only): they serve speculative decoding, not the next token.
		for i := range *n {
			p.ignorePrefixes = append(p.ignorePrefixes, fmt.Sprintf("model.layers.%d.", cfg.Layers+i))
		}
	}
	p.ignore["model.rotary_emb.inv_freq"] = true
	for l := range cfg.Layers {
		p.ignore[fmt.Sprintf("model.layers.%d.self_attn.rotary_emb.inv_freq", l)] = true
		if h.outputBias(head.ModelType) {
			p.zeroOnly[fmt.Sprintf("model.layers.%d.self_attn.o_proj.bias", l)] = "attention output-projection bias"
		}
	}
	return p, nil
}

// parseMode reads the native form: "mode" holds a model.Config verbatim,
// and tensors have canonical names.
func parseMode(raw json.RawMessage) (*plan, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New(`config.json: model_type "mode" needs a "mode" object holding the model config`)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt key would otherwise silently default
	var cfg model.Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("config.json: mode: %w", err)
	}
	if cfg.Arch == "" {
		cfg.Arch = "mode"
	}
	if cfg.Layers > maxLayers || len(cfg.FFN) > maxLayers {
		return nil, fmt.Errorf("config.json: mode: n_layers %d exceeds %d", cfg.Layers, maxLayers)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: mode: %w", err)
	}
	names := NameMap{}
	for _, sp := range cfg.Spec() {
		names[sp.Name] = sp.Name
	}
	return &plan{cfg: cfg, names: names, native: true, ignore: map[string]bool{}, zeroOnly: map[string]string{}}, nil
}

// keyError names the config key a problem is with.
func keyError(key, format string, args ...any) error {
	return fmt.Errorf("%s %s", key, fmt.Sprintf(format, args...))
}
