// Package pvnbot holds the files of the repository's root that the binaries
// embed, so that each stays in one place.
package pvnbot

import _ "embed"

// AppManifest is app.yml, the GitHub App manifest (SPEC §5) that `bot setup`
// registers.
//
//go:embed app.yml
var AppManifest []byte
