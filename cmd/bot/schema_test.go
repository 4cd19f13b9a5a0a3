package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSchemaFileIsCurrent: schema/pvn.schema.json is what `bot schema`
// prints. After changing the schema: go generate ./cmd/bot
func TestSchemaFileIsCurrent(t *testing.T) {
	code, stdout, stderr := runBot(t, "schema")
	require.Equal(t, 0, code, stderr)
	want, err := os.ReadFile(filepath.Join("..", "..", "schema", "pvn.schema.json"))
	require.NoError(t, err)
	assert.Equal(t, string(want), stdout, "schema/pvn.schema.json is stale: run go generate ./cmd/bot")
}

func TestSchemaUsage(t *testing.T) {
	code, _, stderr := runBot(t, "schema", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "# yaml-language-server: $schema=https://")
}
