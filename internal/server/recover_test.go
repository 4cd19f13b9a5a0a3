package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pvnbot/pvnbot/internal/server"
)

// A delivery GitHub could not make while the bot was down is asked for
// again when the bot starts, and processed; one the bot has is not.
func TestMissedDeliveryIsRedelivered(t *testing.T) {
	r := newRig(t)
	rp := r.addRepo("acme/deploys", "web")
	r.start(server.Options{})
	r.untilRun(rp, "pvnbot: shop/staging", rp.head, "success")
	seen, status, err := r.gh.Deliver("push", r.gh.PushPayload(rp.Repo, "main", rp.head, rp.head))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	r.stop()

	before := rp.head
	sha := rp.commit(map[string]string{"services/web.pvn.yaml": service("web", "2")}, "web 2")
	missed := r.gh.FailDelivery("push", r.gh.PushPayload(rp.Repo, "main", before, sha))
	r.start(server.Options{})
	r.until("the missed delivery is processed", func() bool {
		known, err := r.srv.Store().KnownDeliveries(context.Background(), []string{missed})
		return err == nil && known[missed]
	})
	r.untilRun(rp, "pvnbot: shop/staging", sha, "success")
	var redelivered, again int
	for _, d := range r.gh.Deliveries() {
		switch {
		case d.GUID == missed && d.Redelivery:
			redelivered++
			assert.Equal(t, http.StatusOK, d.StatusCode)
		case d.GUID == seen && d.Redelivery:
			again++
		}
	}
	assert.Equal(t, 1, redelivered, "asked for once")
	assert.Zero(t, again, "a delivery the store has is not asked for")
}

// bot serve refuses to start without what it cannot run safely without,
// naming the field, never the secret.
func TestConfigRefusals(t *testing.T) {
	r := newRig(t)
	good := r.config()
	tests := map[string]struct {
		change func(c *server.Config)
		want   string
	}{
		"no webhook secret": {func(c *server.Config) { c.GitHub.App.WebhookSecret = "" }, "github.app.webhookSecret is empty"},
		"no key":            {func(c *server.Config) { c.GitHub.App.PrivateKey = "" }, "github.app.privateKey is empty"},
		"a key that is not one": {func(c *server.Config) {
			c.GitHub.App.PrivateKey = "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"
		},
			"github.app.privateKey (or $GITHUB_APP_PRIVATE_KEY) is not an RSA private key in PEM"},
		"no App ID": {func(c *server.Config) { c.GitHub.App.IntegrationID = 0 }, "github.app.integrationId is not set"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := good
			tt.change(&c)
			_, err := server.New(context.Background(), c, server.Options{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), r.gh.WebhookSecret())
			assert.NotContains(t, err.Error(), "not a key")
		})
	}
}
