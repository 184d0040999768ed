//go:build js && wasm

package main

import (
	"fmt"
	"os"

	"github.com/vugu/vugu"
	"github.com/vugu/vugu/domrender"

	"github.com/moderuntime/mode/ui"
)

func main() {
	if err := run("#app"); err != nil {
		fmt.Fprintln(os.Stderr, "mode ui:", err)
		os.Exit(1)
	}
}

// run renders the root component into the element at mount and re-renders
// after every event until the page goes away. A render that fails is
// reported and the loop goes on: the next one starts again from the mount
// point, and ending here would leave the page's listeners calling into an
// exited program, so that a click on Send would submit the form and reload
// the page.
func run(mount string) error {
	r, err := domrender.New(mount)
	if err != nil {
		return fmt.Errorf("mounting at %s: %w", mount, err)
	}
	defer r.Release()
	env, err := vugu.NewBuildEnv(r.EventEnv())
	if err != nil {
		return err
	}
	root := &ui.Root{}
	for ok := true; ok; ok = r.EventWait() {
		if err := r.Render(env.RunBuild(root)); err != nil {
			fmt.Fprintln(os.Stderr, "mode ui: rendering:", err)
		}
	}
	return nil
}
