package approval

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParse(t *testing.T) {
	approve := func(channel string, services ...string) Command {
		return Command{Kind: Approve, Channel: channel, Services: services}
	}
	ignore := Command{Kind: Ignore}
	help := Command{Kind: Reply, Reply: Help}
	tests := map[string]struct {
		body string
		want Command
	}{
		"a channel":                        {"/approve production", approve("production")},
		"a channel and services":           {"/approve production web api", approve("production", "web", "api")},
		"alone":                            {"/approve", approve("")},
		"the command word in capitals":     {"/APPROVE production", approve("production")},
		"the command word capitalised":     {"/Approve staging", approve("staging")},
		"after other lines":                {"Looks good to me.\n\n/approve production", approve("production")},
		"with trailing text lines":         {"/approve production\nthanks!", approve("production")},
		"windows line ends":                {"lgtm\r\n/approve production\r\n", approve("production")},
		"extra spaces between words":       {"/approve   production    web", approve("production", "web")},
		"a tab between words":              {"/approve\tproduction", approve("production")},
		"the first command counts":         {"/approve staging\n/approve production", approve("staging")},
		"help":                             {"/pvnbot help", help},
		"help in capitals":                 {"/PVNBOT HELP", help},
		"pvnbot alone":                     {"/pvnbot", help},
		"an unknown subcommand":            {"/pvnbot deploy everything", Command{Kind: Reply, Reply: "`deploy` is not a pvnbot command.\n\n" + Help}},
		"a name that is not a name":        {"/approve Production!", Command{Kind: Reply, Reply: "`Production!` is not the name of a release channel or service: use `/approve <channel> [service ...]`."}},
		"a name with an upper-case letter": {"/approve Production", Command{Kind: Reply, Reply: "`Production` is not the name of a release channel or service: use `/approve <channel> [service ...]`."}},
		"a comma between services":         {"/approve production web,api", Command{Kind: Reply, Reply: "`web,api` is not the name of a release channel or service: use `/approve <channel> [service ...]`."}},
		"backticks are not echoed":         {"/approve `rm -rf`", Command{Kind: Reply, Reply: "`rm` is not the name of a release channel or service: use `/approve <channel> [service ...]`."}},

		"plain text":                   {"Looks good to me", ignore},
		"empty":                        {"", ignore},
		"in the middle of a line":      {"please /approve production", ignore},
		"indented":                     {"  /approve production", ignore},
		"quoted":                       {"> /approve production\nno, wait", ignore},
		"quoted after text":            {"you said:\n> /approve production", ignore},
		"in a code block":              {"```\n/approve production\n```", ignore},
		"in a tilde code block":        {"~~~sh\n/approve production\n~~~", ignore},
		"in a longer fence":            {"````\n```\n/approve production\n```\n````", ignore},
		"in an unclosed code block":    {"```\n/approve production", ignore},
		"another slash command":        {"/lgtm", ignore},
		"a longer word":                {"/approved production", ignore},
		"a word that starts alike":     {"/approve-all", ignore},
		"a path":                       {"/usr/bin/approve production", ignore},
		"a URL on its own line":        {"/approve?x=1", ignore},
		"after a code block, counts":   {"```\nlog\n```\n/approve production", approve("production")},
		"after a quote, counts":        {"> can we ship?\n/approve production", approve("production")},
		"inline code is not a command": {"`/approve production`", ignore},
		"an html comment":              {"<!-- /approve production -->", ignore},
		"a mention of the bot":         {"@pvnbot please approve production", ignore},
		"only whitespace":              {" \n\t\n", ignore},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, Parse(tt.body))
		})
	}
}
