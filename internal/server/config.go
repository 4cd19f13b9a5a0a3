// Package server is bot serve: the GitHub App. It serves every repository of
// every installation of the App from one process and one store (SPEC §5,
// §5.1, §6): webhooks in, one engine and one check-run reporter per
// repository, a periodic resync and the redelivery of missed webhooks.
package server

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	jwt "github.com/golang-jwt/jwt/v4"
	"github.com/palantir/go-githubapp/githubapp"

	"github.com/pvnbot/pvnbot/internal/config"
)

// Default GitHub addresses, for github.com.
const (
	DefaultWebURL   = "https://github.com"
	DefaultV3APIURL = "https://api.github.com/"
)

// Config is bot serve's configuration: bot.yaml, with go-githubapp's
// environment overrides applied to its github section.
type Config struct {
	Bot    *config.Bot
	GitHub githubapp.Config
	// StorePath is bot.yaml's store.path, else pvnbot.db beside bot.yaml.
	StorePath string
}

// LoadConfig reads bot.yaml at path and applies the environment overrides
// of go-githubapp (GITHUB_APP_INTEGRATION_ID, GITHUB_APP_WEBHOOK_SECRET,
// GITHUB_APP_PRIVATE_KEY, GITHUB_V3_API_URL, ...), then checks what bot
// serve cannot run without.
func LoadConfig(path string) (Config, error) {
	bot, err := config.LoadBot(path)
	if err != nil {
		return Config{}, err
	}
	c := Config{Bot: bot, GitHub: GitHubConfig(bot.GitHub)}
	c.GitHub.SetValuesFromEnv("")
	c.StorePath = StorePath(path, bot)
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// StorePath is where bot serve keeps its store: bot.yaml's store.path, else
// pvnbot.db beside bot.yaml at path.
func StorePath(path string, bot *config.Bot) string {
	return cmp.Or(bot.Store.Path, filepath.Join(filepath.Dir(path), "pvnbot.db"))
}

// GitHubConfig is bot.yaml's github section as go-githubapp's Config, with
// github.com's addresses by default.
func GitHubConfig(g config.GitHub) githubapp.Config {
	var c githubapp.Config
	c.WebURL = cmp.Or(g.WebURL, DefaultWebURL)
	c.V3APIURL = cmp.Or(g.V3APIURL, DefaultV3APIURL)
	c.V4APIURL = g.V4APIURL
	c.App.IntegrationID = g.App.IntegrationID
	c.App.WebhookSecret = g.App.WebhookSecret
	c.App.PrivateKey = g.App.PrivateKey
	c.OAuth.ClientID = g.OAuth.ClientID
	c.OAuth.ClientSecret = g.OAuth.ClientSecret
	return c
}

// Validate refuses what bot serve must not run with, naming the field. No
// message holds a secret or the key.
func (c Config) Validate() error {
	var errs []error
	app := c.GitHub.App
	if app.IntegrationID <= 0 {
		errs = append(errs, errors.New("github.app.integrationId is not set (or $GITHUB_APP_INTEGRATION_ID): the App's ID, which bot setup printed"))
	}
	if strings.TrimSpace(app.WebhookSecret) == "" {
		errs = append(errs, errors.New("github.app.webhookSecret is empty (or $GITHUB_APP_WEBHOOK_SECRET): without it, unsigned webhooks would be accepted"))
	}
	if strings.TrimSpace(app.PrivateKey) == "" {
		errs = append(errs, errors.New("github.app.privateKey is empty (or $GITHUB_APP_PRIVATE_KEY): the App's private key, in PEM"))
	} else if _, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(app.PrivateKey)); err != nil {
		errs = append(errs, errors.New("github.app.privateKey (or $GITHUB_APP_PRIVATE_KEY) is not an RSA private key in PEM"))
	}
	for _, u := range []struct{ field, value string }{{"github.webUrl", c.GitHub.WebURL}, {"github.v3ApiUrl", c.GitHub.V3APIURL}} {
		if !strings.HasPrefix(u.value, "https://") && !strings.HasPrefix(u.value, "http://") {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL", u.field, u.value))
		}
	}
	return errors.Join(errs...)
}

// Addr is where the server listens: server.address and server.port.
func (c Config) Addr() string {
	return net.JoinHostPort(c.Bot.Server.Address, strconv.Itoa(c.Bot.Server.Port))
}
