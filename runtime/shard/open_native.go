//go:build !wasip1

package shard

func open(loc string, o HTTPOptions) (Source, string, error) { return OpenNative(loc, o) }
