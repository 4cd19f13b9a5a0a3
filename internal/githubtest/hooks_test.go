package githubtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-github/v89/github"
	"github.com/palantir/go-githubapp/githubapp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// received is a delivery a receiver accepted.
type received struct {
	event, guid string
	payload     []byte
	header      http.Header
}

// receiver is a webhook endpoint that checks signatures with go-github and
// answers status.
type receiver struct {
	*httptest.Server
	got    chan received
	status atomic.Int32
}

func newReceiver(t *testing.T, secret string) *receiver {
	rc := &receiver{got: make(chan received, 16)}
	rc.status.Store(http.StatusOK)
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, err := github.ValidatePayload(r, []byte(secret))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.got <- received{github.WebHookType(r), github.DeliveryID(r), payload, r.Header.Clone()}
		w.WriteHeader(int(rc.status.Load()))
	}))
	t.Cleanup(rc.Close)
	return rc
}

// next waits for the next delivery the receiver accepted.
func (rc *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-rc.got:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return received{}
	}
}

func TestDeliverSigned(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, f.g.WebhookSecret())
	f.g.SetWebhookURL(rc.URL)
	payload := f.g.IssueCommentPayload(f.repo, "created", 3, true, 42, "alice", "User", "/approve prod")

	guid, status, err := f.g.Deliver("issue_comment", payload)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	got := rc.next(t)
	assert.Equal(t, "issue_comment", got.event)
	assert.Equal(t, guid, got.guid)
	assert.JSONEq(t, string(payload), string(got.payload))
	assert.True(t, strings.HasPrefix(got.header.Get("User-Agent"), "GitHub-Hookshot/"))
	assert.Equal(t, "application/json", got.header.Get("Content-Type"))
	assert.Regexp(t, `^sha256=[0-9a-f]{64}$`, got.header.Get("X-Hub-Signature-256"))

	ds := f.g.Deliveries()
	require.Len(t, ds, 1)
	d := ds[0]
	assert.Equal(t, Delivery{
		ID: d.ID, GUID: guid, Event: "issue_comment", Action: "created", StatusCode: 200, Status: "OK",
		InstallationID: f.inst, RepositoryID: f.repo.ID, DeliveredAt: d.DeliveredAt, Duration: d.Duration,
	}, d)

	// A bot with another secret refuses the signature.
	wrong := newReceiver(t, "not the secret")
	f.g.SetWebhookURL(wrong.URL)
	_, status, err = f.g.Deliver("issue_comment", payload)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "Invalid HTTP Response: 400", f.g.Deliveries()[1].Status)
}

// pushHandler is a go-githubapp event handler for push events.
type pushHandler struct{ got chan string }

func (h pushHandler) Handles() []string { return []string{"push"} }

func (h pushHandler) Handle(_ context.Context, _, deliveryID string, payload []byte) error {
	var ev github.PushEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return err
	}
	h.got <- deliveryID + " " + ev.GetRef()
	return nil
}

func TestDeliverToGoGithubappDispatcher(t *testing.T) {
	f := newFixture(t)
	h := pushHandler{got: make(chan string, 1)}
	bot := httptest.NewServer(githubapp.NewEventDispatcher([]githubapp.EventHandler{h}, f.g.WebhookSecret()))
	t.Cleanup(bot.Close)
	f.g.SetWebhookURL(bot.URL)

	guid, status, err := f.g.Deliver("push", f.g.PushPayload(f.repo, "main", zeroSHA, f.sha))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, guid+" refs/heads/main", <-h.got)

	_, status, err = f.g.Deliver("check_run", f.g.CheckRunPayload(f.repo, "rerequested", CheckRun{ID: 1, Name: "x", HeadSHA: f.sha}, "alice", ""))
	require.NoError(t, err)
	assert.Equal(t, http.StatusAccepted, status, "no handler: 202")
}

func TestDeliverWithoutBot(t *testing.T) {
	f := newFixture(t)
	payload := f.g.PushPayload(f.repo, "main", zeroSHA, f.sha)
	_, status, err := f.g.Deliver("push", payload)
	require.Error(t, err, "no webhook URL")
	assert.Equal(t, 0, status)

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	f.g.SetWebhookURL(down.URL)
	_, status, err = f.g.Deliver("push", payload)
	require.Error(t, err)
	assert.Equal(t, 0, status)
	for _, d := range f.g.Deliveries() {
		assert.Equal(t, 0, d.StatusCode)
		assert.Equal(t, "failed", d.Status)
	}
}

func TestRedeliverFailedDelivery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rc := newReceiver(t, f.g.WebhookSecret())
	f.g.SetWebhookURL(rc.URL)
	payload := f.g.PushPayload(f.repo, "main", zeroSHA, f.sha)

	guid := f.g.FailDelivery("push", payload)
	failed := f.g.Deliveries()[0]
	assert.Equal(t, Delivery{
		ID: failed.ID, GUID: guid, Event: "push", StatusCode: 502, Status: "Invalid HTTP Response: 502",
		InstallationID: f.inst, RepositoryID: f.repo.ID, DeliveredAt: failed.DeliveredAt,
	}, failed)
	select {
	case <-rc.got:
		t.Fatal("a failed delivery is not sent")
	default:
	}

	app := f.appClient(t)
	_, _, err := app.Apps.RedeliverHookDelivery(ctx, failed.ID)
	assert.ErrorAs(t, err, new(*github.AcceptedError), "202, which go-github reports as AcceptedError")
	got := rc.next(t)
	assert.Equal(t, guid, got.guid, "a redelivery keeps its GUID")
	assert.JSONEq(t, string(payload), string(got.payload))

	ds := f.g.WaitDeliveries(2)
	again := ds[1]
	assert.Equal(t, Delivery{
		ID: again.ID, GUID: guid, Event: "push", StatusCode: 200, Status: "OK", Redelivery: true,
		InstallationID: f.inst, RepositoryID: f.repo.ID, DeliveredAt: again.DeliveredAt, Duration: again.Duration,
	}, again)

	hd, _, err := app.Apps.GetHookDelivery(ctx, again.ID)
	require.NoError(t, err)
	assert.Equal(t, guid, hd.GetGUID())
	assert.True(t, hd.GetRedelivery())
	assert.Equal(t, 200, hd.GetStatusCode())
	assert.Equal(t, guid, hd.GetRequest().GetHeader("X-GitHub-Delivery"))
	assert.JSONEq(t, string(payload), string(*hd.GetRequest().RawPayload))
	assert.NotNil(t, hd.GetResponse())

	_, _, err = app.Apps.RedeliverHookDelivery(ctx, 1)
	assertStatus(t, err, http.StatusNotFound)
	_, _, err = app.Apps.GetHookDelivery(ctx, 1)
	assertStatus(t, err, http.StatusNotFound)
}

func TestListHookDeliveriesByCursor(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for range 5 {
		f.g.FailDelivery("push", f.g.PushPayload(f.repo, "main", zeroSHA, f.sha))
	}
	var want []int64
	for _, d := range slices.Backward(f.g.Deliveries()) {
		want = append(want, d.ID)
	}

	app := f.appClient(t)
	var got []int64
	opts := &github.ListCursorOptions{PerPage: 2}
	for pages := 1; ; pages++ {
		page, resp, err := app.Apps.ListHookDeliveries(ctx, opts)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(page), 2)
		for _, d := range page {
			got = append(got, d.GetID())
			assert.Equal(t, "push", d.GetEvent())
			assert.Nil(t, d.Request, "the list leaves out requests")
		}
		if resp.Cursor == "" {
			assert.Equal(t, 3, pages)
			break
		}
		opts.Cursor = resp.Cursor
	}
	assert.Equal(t, want, got, "newest first")

	_, _, err := app.Apps.ListHookDeliveries(ctx, &github.ListCursorOptions{Cursor: "bogus"})
	assertStatus(t, err, http.StatusUnprocessableEntity)
}
