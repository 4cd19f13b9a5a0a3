// Package approval reads approvals from pull-request comments: Parse turns
// a comment's body into a command, a reply, or nothing (Atlantis-style: a
// pure function), and Gate decides whether the person may approve,
// returning the reason to tell them when not.
package approval

import (
	"fmt"
	"regexp"
	"strings"
)

// Kind is what a comment asks for.
type Kind int

const (
	// Ignore: the comment is not for pvnbot.
	Ignore Kind = iota
	// Approve: approve a release channel (Command.Channel, or the one
	// waiting when empty), all of its waiting targets or Command.Services.
	Approve
	// Reply: answer with Command.Reply (help, or what was wrong).
	Reply
)

// Command is what one comment asks of pvnbot.
type Command struct {
	Kind     Kind
	Channel  string
	Services []string
	Reply    string
}

// Help is the reply to /pvnbot help.
const Help = "pvnbot takes these commands, each at the start of a line of a comment on the pull request that produced the deployed commit:\n\n" +
	"- `/approve <channel> [service ...]` approves the release channel's targets waiting for approval (all of them, or the services named)\n" +
	"- `/approve` approves the only release channel waiting for approval\n" +
	"- `/pvnbot help` shows this\n\n" +
	"Only people with write, maintain or admin access to the repository can approve; edited comments never approve: comment again."

// name is a release channel's or service's name (SPEC §1).
var name = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

// Parse reads the first command of a comment: a line starting with
// /approve or /pvnbot (the command word in any case). Lines quoted with >
// and the inside of code blocks are not commands; a comment without a
// command is ignored silently.
func Parse(body string) Command {
	fence := ""
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if f := fenceOf(trimmed); f != "" {
			fence = f
			continue
		}
		if strings.HasPrefix(trimmed, ">") || !strings.HasPrefix(line, "/") {
			continue
		}
		fields := strings.Fields(line)
		switch strings.ToLower(fields[0]) {
		case "/approve":
			return approve(fields[1:])
		case "/pvnbot":
			if len(fields) > 1 && strings.ToLower(fields[1]) != "help" {
				return Command{Kind: Reply, Reply: fmt.Sprintf("`%s` is not a pvnbot command.\n\n%s", clip(fields[1]), Help)}
			}
			return Command{Kind: Reply, Reply: Help}
		}
	}
	return Command{Kind: Ignore}
}

func approve(args []string) Command {
	for _, a := range args {
		if !name.MatchString(a) || len(a) > 63 {
			return Command{Kind: Reply, Reply: fmt.Sprintf("`%s` is not the name of a release channel or service: use `/approve <channel> [service ...]`.", clip(a))}
		}
	}
	c := Command{Kind: Approve}
	if len(args) > 0 {
		c.Channel = args[0]
	}
	if len(args) > 1 {
		c.Services = args[1:]
	}
	return c
}

// fenceOf is the fence a line opens (``` or ~~~, three or more), or "".
func fenceOf(line string) string {
	for _, ch := range []string{"`", "~"} {
		if n := len(line) - len(strings.TrimLeft(line, ch)); n >= 3 {
			return strings.Repeat(ch, n)
		}
	}
	return ""
}

// clip keeps what is echoed of a comment short, and out of Markdown.
func clip(s string) string {
	s = strings.NewReplacer("`", "", "\n", " ").Replace(s)
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
