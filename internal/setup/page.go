package setup

import (
	"bytes"
	"html/template"
	"net/http"
)

const layout = `{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 40rem; margin: 3rem auto; padding: 2rem 2.5rem; background: #fff; border: 1px solid #d0d7de; border-radius: 8px; }
h1 { font-size: 1.5rem; margin-top: 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .4rem 1.2rem; margin: 1.5rem 0; }
dt { color: #59636e; }
dd { margin: 0; overflow-wrap: anywhere; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; background: #eff1f3; padding: .1em .3em; border-radius: 4px; }
button, a.button { display: inline-block; font: inherit; font-weight: 600; color: #fff; background: #1f883d; border: 1px solid #1a7f37;
  border-radius: 6px; padding: .6rem 1.2rem; cursor: pointer; text-decoration: none; }
button:hover, a.button:hover { background: #1a7f37; }
.note { color: #59636e; font-size: .9rem; }
.warn { color: #9a6700; }
</style></head><body><main>{{end}}
{{define "bottom"}}</main></body></html>{{end}}`

var (
	startPage = page(`{{template "top" .}}
<h1>Register pvnbot as a GitHub App</h1>
<p>This creates a GitHub App from pvnbot's manifest. GitHub asks you to confirm its name,
then sends you back here, and <code>bot setup</code> writes the App's credentials to <code>bot.yaml</code>.</p>
<dl>
<dt>App name</dt><dd>{{.Manifest.Name}}</dd>
<dt>GitHub</dt><dd>{{.GitHub}}</dd>
<dt>Owner</dt><dd>{{.Owner}}</dd>
<dt>Webhook URL</dt><dd><code>{{.Manifest.WebhookURL}}</code></dd>
<dt>Permissions</dt><dd>{{range $i, $p := .Manifest.Permissions}}{{if $i}}, {{end}}{{$p}}{{end}}</dd>
<dt>Events</dt><dd>{{range $i, $e := .Manifest.Events}}{{if $i}}, {{end}}{{$e}}{{end}}</dd>
<dt>Writes</dt><dd><code>{{.Path}}</code>{{if .Force}} <span class="warn">(replacing the file there)</span>{{end}}</dd>
</dl>
<form action="{{.Action}}" method="post">
<input type="hidden" name="manifest" value="{{.Manifest.JSON}}">
<button type="submit" id="create">Create the GitHub App on {{.Host}}</button>
</form>
<p class="note">The App's private key and webhook secret go into that file only, with mode 0600;
they are not shown here or printed.</p>
{{template "bottom"}}`, "Register pvnbot as a GitHub App")

	donePage = page(`{{template "top" .}}
<h1>pvnbot is registered</h1>
<dl>
<dt>App</dt><dd><a href="{{.App.HTMLURL}}">{{.App.Name}}</a></dd>
<dt>App ID</dt><dd>{{.App.ID}}</dd>
<dt>Config</dt><dd><code>{{.Path}}</code> (mode 0600, holds the private key and webhook secret)</dd>
</dl>
<p>Next, install the App on the repositories pvnbot should deploy from:</p>
<p><a class="button" id="install" href="{{.Install}}">Install {{.App.Name}}</a></p>
<p class="note">Then start it with <code>bot serve --config {{.Path}}</code>. bot setup has exited: you can close this tab.</p>
{{template "bottom"}}`, "pvnbot is registered")

	problemPage = page(`{{template "top" .}}
<h1>{{.Title}}</h1>
<p>{{.Detail}}</p>
<p><a href="{{.Page}}">Back to the setup page</a></p>
{{template "bottom"}}`, "")
)

// page parses a page's template with the layout; title is the page's
// title when the data has none.
func page(body, title string) *pageTemplate {
	t := template.Must(template.New("layout").Parse(layout))
	template.Must(t.New("page").Parse(body))
	return &pageTemplate{t: t, title: title}
}

type pageTemplate struct {
	t     *template.Template
	title string
}

func render(w http.ResponseWriter, status int, p *pageTemplate, data map[string]any) {
	if _, ok := data["Title"]; !ok {
		data["Title"] = p.title
	}
	var b bytes.Buffer
	if err := p.t.ExecuteTemplate(&b, "page", data); err != nil {
		http.Error(w, "render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
