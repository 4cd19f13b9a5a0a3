package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pvnbot/pvnbot/internal/config"
)

//go:generate sh -c "go run . schema > ../../schema/pvn.schema.json"

// runSchema is `bot schema`: the JSON Schema of *.pvn.yaml documents, for
// editors. schema/pvn.schema.json holds the same (a test checks it).
func runSchema(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bot schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bot schema")
		fmt.Fprintln(stderr, "\nPrints the JSON Schema (2020-12) of *.pvn.yaml documents. Editors that use")
		fmt.Fprintln(stderr, "yaml-language-server take it from a first line of the file:")
		fmt.Fprintln(stderr, "  # yaml-language-server: $schema="+config.SchemaID)
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	stdout.Write(config.JSONSchema())
	return 0
}
