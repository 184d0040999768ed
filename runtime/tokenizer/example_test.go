package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/moderuntime/mode/runtime/tokenizer"
)

func ExampleLoadHF() {
	// A tiny BPE tokenizer: words (with their leading space) are split off
	// by a regex, then merged from characters by rank.
	const tokenizerJSON = `{
	  "added_tokens": [{"id": 15, "content": "<eos>", "special": true}],
	  "normalizer": null,
	  "pre_tokenizer": {"type": "Split", "pattern": {"Regex": " ?\\p{L}+"}, "behavior": "Isolated", "invert": false},
	  "decoder": {"type": "Fuse"},
	  "model": {
	    "type": "BPE",
	    "vocab": {" ": 0, "h": 1, "e": 2, "l": 3, "o": 4, "w": 5, "r": 6, "d": 7,
	              "he": 8, "ll": 9, "hell": 10, "hello": 11, " w": 12, "or": 13, " wor": 14},
	    "merges": [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], [" ", "w"], ["o", "r"], [" w", "or"]]
	  }
	}`
	const configJSON = `{"eos_token": "<eos>"}`

	tok, err := tokenizer.LoadHF([]byte(tokenizerJSON), []byte(configJSON))
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("hello world<eos>")
	fmt.Println(ids)
	fmt.Printf("%q\n", tok.Decode(ids))
	fmt.Println(tok.EOS())
	// Output:
	// [11 14 3 7 15]
	// "hello world<eos>"
	// [15]
}

func ExampleStream() {
	tok, err := tokenizer.LoadHF([]byte(`{
	  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
	  "decoder": {"type": "ByteLevel"},
	  "model": {"type": "BPE", "merges": [],
	            "vocab": {"h": 0, "i": 1, "ð": 2, "Ł": 3, "ĺ": 4, "Ģ": 5}}
	}`), nil)
	if err != nil {
		log.Fatal(err)
	}
	// "😀" is four bytes, so four byte-level tokens; the stream releases it
	// only once it is complete.
	s := tok.NewStream()
	for _, id := range tok.Encode("hi😀") {
		fmt.Printf("%q ", s.Push(id))
	}
	fmt.Printf("%q\n", s.Flush())
	// Output:
	// "h" "i" "" "" "" "😀" ""
}
