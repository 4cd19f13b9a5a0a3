package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// maxSymlinkHops bounds symlink resolution, as Linux does.
const maxSymlinkHops = 40

var (
	errLinkEscapes = errors.New("leads outside the repository")
	errLinkLoop    = errors.New(": too many levels of symbolic links")
	errLinkBroken  = errors.New("leads to nothing")
	errLinkFolder  = errors.New("leads to a folder, not a file")
)

// resolveLink returns where the file at name is, following every symlink
// on the way while it stays inside fsys: the path it returns names no
// symlink. A link that leaves the tree (absolute, or through ".."), one that
// leads nowhere or to a folder, and a loop are errors, which read after
// `symlink to "TARGET"`.
func resolveLink(fsys fs.FS, name string) (string, error) {
	todo := strings.Split(name, "/")
	done := "."
	for hops := 0; len(todo) > 0; {
		part := todo[0]
		todo = todo[1:]
		if part == "." || part == "" {
			continue
		}
		next := path.Join(done, part)
		info, err := fs.Lstat(fsys, next)
		if errors.Is(err, fs.ErrNotExist) {
			return "", errLinkBroken
		}
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", errLinkLoop
		}
		target, err := fs.ReadLink(fsys, next)
		if err != nil {
			return "", err
		}
		// done holds no symlink, so ".." in target is resolved by name.
		joined := path.Join(done, target)
		if path.IsAbs(target) || joined == ".." || strings.HasPrefix(joined, "../") {
			return "", errLinkEscapes
		}
		todo = append(strings.Split(joined, "/"), todo...)
		done = "."
	}
	info, err := fs.Stat(fsys, done)
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return "", errLinkFolder
	}
	return done, nil
}

// linkProblem says why the symlink at name cannot be followed.
func linkProblem(fsys fs.FS, name string, err error) string {
	target, _ := fs.ReadLink(fsys, name)
	sep := " "
	if errors.Is(err, errLinkLoop) {
		sep = ""
	}
	return fmt.Sprintf("symlink to %q%s%v", target, sep, err)
}
