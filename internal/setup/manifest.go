package setup

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"go.yaml.in/yaml/v3"
)

// manifest is what the page shows of the App manifest and what it posts.
type manifest struct {
	Name        string
	Permissions []string // "checks: write", sorted
	Events      []string
	WebhookURL  string
	JSON        string // the form's manifest field
}

// buildManifest turns app.yml into the JSON manifest GitHub's App creation
// page takes, with the webhook and redirect URLs of this setup and, when
// name is not empty, another App name.
func buildManifest(appYAML []byte, name, webhookURL, redirectURL string) (*manifest, error) {
	var m map[string]any
	if err := yaml.Unmarshal(appYAML, &m); err != nil {
		return nil, fmt.Errorf("read the App manifest: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("read the App manifest: it is empty")
	}
	if name != "" {
		m["name"] = name
	}
	hook, _ := m["hook_attributes"].(map[string]any)
	if hook == nil {
		hook = map[string]any{}
	}
	hook["url"] = webhookURL
	m["hook_attributes"] = hook
	m["redirect_url"] = redirectURL

	out := &manifest{WebhookURL: webhookURL}
	out.Name, _ = m["name"].(string)
	if out.Name == "" {
		return nil, fmt.Errorf("the App manifest has no name")
	}
	perms, _ := m["default_permissions"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(perms)) {
		out.Permissions = append(out.Permissions, fmt.Sprintf("%s: %v", k, perms[k]))
	}
	events, _ := m["default_events"].([]any)
	for _, e := range events {
		out.Events = append(out.Events, fmt.Sprint(e))
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode the App manifest: %w", err)
	}
	out.JSON = string(data)
	return out, nil
}
