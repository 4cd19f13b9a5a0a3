package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// botFile is the part of bot.yaml that setup writes, in the format
// config.ParseBot reads.
type botFile struct {
	Github struct {
		WebURL   string `yaml:"webUrl"`
		V3APIURL string `yaml:"v3ApiUrl"`
		App      struct {
			IntegrationID int64  `yaml:"integrationId"`
			WebhookSecret string `yaml:"webhookSecret"`
			PrivateKey    string `yaml:"privateKey"`
		} `yaml:"app"`
	} `yaml:"github"`
}

// botYAML renders bot.yaml for a registered App. The private key comes out
// as a literal block.
func botYAML(urls githubURLs, app *App, webhookSecret, privateKey string) ([]byte, error) {
	var f botFile
	f.Github.WebURL = urls.web
	f.Github.V3APIURL = urls.api
	f.Github.App.IntegrationID = app.ID
	f.Github.App.WebhookSecret = webhookSecret
	f.Github.App.PrivateKey = privateKey

	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by `bot setup` for the GitHub App %s (%s).\n", app.Slug, app.HTMLURL)
	b.WriteString("# It holds the App's private key and webhook secret: keep it private, or move\n" +
		"# them to GITHUB_APP_PRIVATE_KEY and GITHUB_APP_WEBHOOK_SECRET and delete them here.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("encode bot.yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode bot.yaml: %w", err)
	}
	return b.Bytes(), nil
}

// checkTarget fails when path cannot be written: its folder is missing, or
// it exists and force is not set.
func checkTarget(path string, force bool) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("the folder of %s: %w", path, err)
	} else if !st.IsDir() {
		return fmt.Errorf("the folder of %s: %s is not a folder", path, dir)
	}
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s exists: pass --force to overwrite it", path)
	}
	return nil
}

// writePrivate writes data to path with mode 0600. Without force it
// refuses an existing file; with force it replaces the file whole (a
// temporary file renamed over it), so no reader sees half of it.
func writePrivate(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: pass --force to overwrite it", path)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := finish(f, data); err != nil {
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".bot-setup-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := finish(f, data); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// finish writes data, syncs and closes f.
func finish(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
