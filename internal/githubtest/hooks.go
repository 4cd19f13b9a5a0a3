package githubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v89/github"
)

// Delivery is one attempt at delivering a webhook, as the App's hook
// delivery log shows it.
type Delivery struct {
	ID         int64
	GUID       string // X-GitHub-Delivery, the same on every attempt of one delivery
	Event      string // X-GitHub-Event
	Action     string // the payload's action, if any
	StatusCode int    // the bot's answer; 0 when the request could not be made
	Status     string // "OK", "Invalid HTTP Response: 502", "failed", "timed out"…
	Redelivery bool
	// InstallationID and RepositoryID are read from the payload.
	InstallationID, RepositoryID int64
	DeliveredAt                  time.Time
	Duration                     time.Duration
}

// delivery is an attempt with what was sent and answered.
type delivery struct {
	Delivery
	payload     []byte
	reqHeaders  map[string]string
	respHeaders map[string]string
	respBody    []byte
}

// hookTimeout is how long GitHub waits for an answer to a delivery.
const hookTimeout = 10 * time.Second

// Deliver sends a webhook to the URL SetWebhookURL set, signed with
// WebhookSecret as GitHub signs it, and logs the attempt with the status
// code the bot answered. err is set when no answer came (status 0).
func (g *GitHub) Deliver(event string, payload []byte) (guid string, status int, err error) {
	guid = newGUID()
	d, err := g.attempt(event, guid, payload, false)
	return guid, d.StatusCode, err
}

// DeliverAgain sends a delivery once more with the same GUID, as GitHub
// does when it redelivers (or, now and then, on its own).
func (g *GitHub) DeliverAgain(event, guid string, payload []byte) (status int, err error) {
	d, err := g.attempt(event, guid, payload, true)
	return d.StatusCode, err
}

// FailDelivery logs a delivery that GitHub tried and could not make (the
// bot was down): status code 502, "Invalid HTTP Response: 502". It is not
// sent. Redelivering its ID sends it, with the same GUID.
func (g *GitHub) FailDelivery(event string, payload []byte) (guid string) {
	guid = newGUID()
	d := g.newDelivery(event, guid, payload, false)
	d.StatusCode, d.Status = http.StatusBadGateway, "Invalid HTTP Response: 502"
	g.log(d)
	return guid
}

// Deliveries is every delivery attempt logged so far, oldest first.
func (g *GitHub) Deliveries() []Delivery {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Delivery, len(g.deliveries))
	for i, d := range g.deliveries {
		out[i] = d.Delivery
	}
	return out
}

// WaitDeliveries waits until at least n attempts are logged (a redelivery
// is sent after its request was answered) and returns them all. It fails
// the test after 10 seconds.
func (g *GitHub) WaitDeliveries(n int) []Delivery {
	g.t.Helper()
	timeout := time.After(hookTimeout)
	for {
		g.mu.Lock()
		have, logged := len(g.deliveries), g.logged
		g.mu.Unlock()
		if have >= n {
			return g.Deliveries()
		}
		select {
		case <-logged:
		case <-timeout:
			g.t.Fatalf("githubtest: %d deliveries logged after %v, want %d", have, hookTimeout, n)
		}
	}
}

// attempt sends a delivery and logs it.
func (g *GitHub) attempt(event, guid string, payload []byte, redelivery bool) (Delivery, error) {
	d := g.newDelivery(event, guid, payload, redelivery)
	g.mu.Lock()
	url := g.webhookURL
	g.mu.Unlock()
	err := errors.New("githubtest: no webhook URL set")
	if url != "" {
		err = g.send(d, url)
	}
	var timeout interface{ Timeout() bool }
	switch {
	case errors.As(err, &timeout) && timeout.Timeout():
		d.Status = "timed out"
	case err != nil:
		d.Status = "failed"
	}
	g.log(d)
	return d.Delivery, err
}

func (g *GitHub) send(d *delivery, url string) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.payload))
	if err != nil {
		return fmt.Errorf("githubtest: deliver to %s: %w", url, err)
	}
	for k, v := range d.reqHeaders {
		req.Header.Set(k, v)
	}
	resp, err := g.hooks.Do(req)
	d.Duration = time.Since(d.DeliveredAt)
	if err != nil {
		return fmt.Errorf("githubtest: deliver to %s: %w", url, err)
	}
	defer resp.Body.Close()
	d.respBody, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	d.StatusCode = resp.StatusCode
	d.Status = "Invalid HTTP Response: " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode/100 == 2 {
		d.Status = http.StatusText(resp.StatusCode)
	}
	d.respHeaders = map[string]string{}
	for k := range resp.Header {
		d.respHeaders[strings.ToLower(k)] = resp.Header.Get(k)
	}
	return nil
}

// newDelivery prepares an attempt: GitHub's headers, signed.
func (g *GitHub) newDelivery(event, guid string, payload []byte, redelivery bool) *delivery {
	var ids struct {
		Action       string `json:"action"`
		Installation struct {
			ID int64 `json:"id"`
		} `json:"installation"`
		Repository struct {
			ID int64 `json:"id"`
		} `json:"repository"`
	}
	_ = json.Unmarshal(payload, &ids)
	sha256Sum := hmac.New(sha256.New, []byte(g.secret))
	sha256Sum.Write(payload)
	sha1Sum := hmac.New(sha1.New, []byte(g.secret))
	sha1Sum.Write(payload)
	return &delivery{
		Delivery: Delivery{
			GUID: guid, Event: event, Action: ids.Action, Redelivery: redelivery,
			InstallationID: ids.Installation.ID, RepositoryID: ids.Repository.ID,
			DeliveredAt: time.Now().UTC(),
		},
		payload: slices.Clone(payload),
		reqHeaders: map[string]string{
			"Accept":                                 "*/*",
			"Content-Type":                           "application/json",
			"User-Agent":                             "GitHub-Hookshot/4f6d8a1",
			"X-GitHub-Delivery":                      guid,
			"X-GitHub-Event":                         event,
			"X-GitHub-Hook-ID":                       strconv.Itoa(hookID),
			"X-GitHub-Hook-Installation-Target-ID":   strconv.Itoa(appID),
			"X-GitHub-Hook-Installation-Target-Type": "integration",
			"X-Hub-Signature":                        "sha1=" + hex.EncodeToString(sha1Sum.Sum(nil)),
			"X-Hub-Signature-256":                    "sha256=" + hex.EncodeToString(sha256Sum.Sum(nil)),
		},
	}
}

// hookID is the ID of the App's webhook.
const hookID = 999

func (g *GitHub) log(d *delivery) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d.ID = g.newID()
	g.deliveries = append(g.deliveries, d)
	close(g.logged)
	g.logged = make(chan struct{})
}

// findDelivery finds an attempt by ID. Callers hold g.mu.
func (g *GitHub) findDelivery(id int64) *delivery {
	for _, d := range g.deliveries {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// listDeliveries answers GET /app/hook/deliveries: newest first, paged by
// cursor as GitHub does (per_page, cursor, Link rel="next").
func (g *GitHub) listDeliveries(w http.ResponseWriter, r *http.Request, _ caller) {
	_, perPage := paging(r)
	before := int64(-1) // the cursor: only attempts older than this ID
	if c := r.URL.Query().Get("cursor"); c != "" {
		id, err := strconv.ParseInt(strings.TrimPrefix(c, "v1_"), 10, 64)
		if err != nil || !strings.HasPrefix(c, "v1_") {
			writeError(w, http.StatusUnprocessableEntity, "Invalid cursor")
			return
		}
		before = id
	}
	g.mu.Lock()
	page := []*github.HookDelivery{}
	more := false
	for _, d := range slices.Backward(g.deliveries) {
		if before >= 0 && d.ID >= before {
			continue
		}
		if len(page) == perPage {
			more = true
			break
		}
		page = append(page, hookDeliveryJSON(d, false))
	}
	g.mu.Unlock()
	if more {
		u := *r.URL
		q := u.Query()
		q.Set("per_page", strconv.Itoa(perPage))
		q.Set("cursor", "v1_"+itoa(page[len(page)-1].GetID()))
		u.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, u.RequestURI()))
	}
	writeJSON(w, http.StatusOK, page)
}

func (g *GitHub) getDelivery(w http.ResponseWriter, r *http.Request, _ caller) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	g.mu.Lock()
	var v *github.HookDelivery
	if d := g.findDelivery(id); d != nil {
		v = hookDeliveryJSON(d, true)
	}
	g.mu.Unlock()
	if v == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// redeliver answers POST /app/hook/deliveries/{id}/attempts with 202
// Accepted, then sends the delivery again (same GUID, redelivery true) and
// logs the new attempt.
func (g *GitHub) redeliver(w http.ResponseWriter, r *http.Request, _ caller) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	g.mu.Lock()
	d := g.findDelivery(id)
	g.mu.Unlock()
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	g.sends.Add(1)
	go func() {
		defer g.sends.Done()
		_, _ = g.attempt(d.Event, d.GUID, d.payload, true)
	}()
	writeJSON(w, http.StatusAccepted, struct{}{})
}

// hookDeliveryJSON is an attempt as the REST API shows it; the request and
// response only for a single delivery. Callers hold g.mu.
func hookDeliveryJSON(d *delivery, full bool) *github.HookDelivery {
	v := &github.HookDelivery{
		ID:             github.Ptr(d.ID),
		GUID:           github.Ptr(d.GUID),
		DeliveredAt:    &github.Timestamp{Time: d.DeliveredAt},
		Redelivery:     github.Ptr(d.Redelivery),
		Duration:       github.Ptr(d.Duration.Seconds()),
		Status:         github.Ptr(d.Status),
		StatusCode:     github.Ptr(d.StatusCode),
		Event:          github.Ptr(d.Event),
		InstallationID: github.Ptr(d.InstallationID),
		RepositoryID:   github.Ptr(d.RepositoryID),
	}
	if d.Action != "" {
		v.Action = github.Ptr(d.Action)
	}
	if full {
		v.Request = &github.HookRequest{Headers: d.reqHeaders, RawPayload: rawJSON(d.payload)}
		body, _ := json.Marshal(string(d.respBody))
		v.Response = &github.HookResponse{Headers: d.respHeaders, RawPayload: (*json.RawMessage)(&body)}
	}
	return v
}

// rawJSON is b as it is when it is JSON, else as a JSON string.
func rawJSON(b []byte) *json.RawMessage {
	if !json.Valid(b) {
		b, _ = json.Marshal(string(b))
	}
	m := json.RawMessage(slices.Clone(b))
	return &m
}

// newGUID makes a random (version 4) UUID, like X-GitHub-Delivery.
func newGUID() string {
	b, _ := hex.DecodeString(randomHex(16))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
