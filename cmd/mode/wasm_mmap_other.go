//go:build !linux && !darwin && !wasip1 && !js

package main

import "errors"

func mmapAnon(uint64) ([]byte, error) { return nil, errors.New("no anonymous mappings here") }

func munmapAnon([]byte) {}
