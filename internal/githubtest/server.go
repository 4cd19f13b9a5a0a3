package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"
	"github.com/google/go-github/v89/github"
)

// apiPrefix is where the REST API lives, as on GitHub Enterprise Server.
const apiPrefix = "/api/v3"

// docsURL is the documentation_url of GitHub's error bodies.
const docsURL = "https://docs.github.com/rest"

// auth says which credential an endpoint takes.
type auth int

const (
	appJWT            auth = iota // Authorization: Bearer <App JWT>
	installationToken             // Authorization: token <installation token> (or Bearer)
)

// caller is who made a request.
type caller struct {
	// installationID is the installation of the token; 0 for the App.
	installationID int64
}

type handler func(w http.ResponseWriter, r *http.Request, c caller)

func (g *GitHub) routes(mux *http.ServeMux) {
	for _, rt := range []struct {
		pattern string
		auth    auth
		h       handler
	}{
		{"GET /app", appJWT, g.getApp},
		{"GET /app/installations", appJWT, g.listInstallations},
		{"GET /app/installations/{id}", appJWT, g.getInstallation},
		{"POST /app/installations/{id}/access_tokens", appJWT, g.createToken},
		{"GET /repos/{owner}/{repo}/installation", appJWT, g.getRepoInstallation},
		{"GET /orgs/{owner}/installation", appJWT, g.getAccountInstallation},
		{"GET /users/{owner}/installation", appJWT, g.getAccountInstallation},
		{"GET /app/hook/deliveries", appJWT, g.listDeliveries},
		{"GET /app/hook/deliveries/{id}", appJWT, g.getDelivery},
		{"POST /app/hook/deliveries/{id}/attempts", appJWT, g.redeliver},

		{"GET /installation/repositories", installationToken, g.listInstallationRepos},
		{"GET /repos/{owner}/{repo}", installationToken, g.getRepo},
		{"GET /repos/{owner}/{repo}/branches/{branch...}", installationToken, g.getBranch},
		{"GET /repos/{owner}/{repo}/commits/{ref...}", installationToken, g.commits},
		{"POST /repos/{owner}/{repo}/check-runs", installationToken, g.createCheckRun},
		{"PATCH /repos/{owner}/{repo}/check-runs/{id}", installationToken, g.updateCheckRun},
		{"GET /repos/{owner}/{repo}/check-runs/{id}", installationToken, g.getCheckRun},
		{"GET /repos/{owner}/{repo}/check-runs/{id}/annotations", installationToken, g.listAnnotations},
		{"GET /repos/{owner}/{repo}/pulls/{number}", installationToken, g.getPull},
		{"GET /repos/{owner}/{repo}/issues/{number}/comments", installationToken, g.listComments},
		{"POST /repos/{owner}/{repo}/issues/{number}/comments", installationToken, g.createComment},
		{"POST /repos/{owner}/{repo}/issues/comments/{id}/reactions", installationToken, g.createReaction},
		{"GET /repos/{owner}/{repo}/collaborators/{user}/permission", installationToken, g.getPermission},
	} {
		method, p, _ := strings.Cut(rt.pattern, " ")
		mux.Handle(method+" "+apiPrefix+p, g.rest(rt.auth, rt.h))
	}
	mux.Handle(apiPrefix+"/", g.rest(installationToken, func(w http.ResponseWriter, r *http.Request, _ caller) {
		writeError(w, http.StatusNotFound, "Not Found")
	}))
}

// statusWriter remembers the status code of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// rest wraps an endpoint with what every REST answer goes through:
// injected failures, authentication, injected rate limits, rate-limit
// headers and the request log.
func (g *GitHub) rest(a auth, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		apiPath := strings.TrimPrefix(r.URL.Path, apiPrefix)
		var c caller
		defer func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.requests = append(g.requests, Request{
				Method: r.Method, Path: apiPath, Query: r.URL.RawQuery,
				Status: sw.status, InstallationID: c.installationID,
			})
		}()
		sw.Header().Set("X-GitHub-Request-Id", randomHex(8))
		if status := g.injectedFailure(apiPath, r.URL.Path); status != 0 {
			writeError(sw, status, http.StatusText(status))
			return
		}
		var (
			ok  bool
			msg string
		)
		if a == appJWT {
			ok, msg = g.checkJWT(r)
		} else {
			c.installationID, ok, msg = g.checkToken(r)
		}
		g.setRateHeaders(sw, c, ok)
		if !ok {
			writeError(sw, http.StatusUnauthorized, msg)
			return
		}
		if isWrite(r.Method) && !strings.HasSuffix(apiPath, "/access_tokens") && g.injectedRateLimit(sw, c) {
			return
		}
		h(sw, r, c)
	})
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func (g *GitHub) injectedFailure(paths ...string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.failures {
		f := &g.failures[i]
		if f.left == 0 {
			continue
		}
		for _, p := range paths {
			if ok, _ := path.Match(f.pattern, p); ok {
				f.left--
				return f.status
			}
		}
	}
	return 0
}

// setRateHeaders counts the request against the caller's hourly budget and
// says so in GitHub's X-RateLimit-* headers.
func (g *GitHub) setRateHeaders(w http.ResponseWriter, c caller, authenticated bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	limit, key := rateLimit, c.installationID
	if !authenticated {
		limit, key = 60, -1 // GitHub's budget for unauthenticated requests
	}
	reset := g.start.Add(time.Since(g.start).Truncate(time.Hour) + time.Hour)
	if !reset.Equal(g.rateReset) {
		g.rateReset, g.rateUsed = reset, map[int64]int{}
	}
	g.rateUsed[key]++
	used := min(g.rateUsed[key], limit-1) // never 0 left: that would be a rate-limit error
	h := w.Header()
	h.Set(github.HeaderRateLimit, strconv.Itoa(limit))
	h.Set(github.HeaderRateRemaining, strconv.Itoa(limit-used))
	h.Set(github.HeaderRateUsed, strconv.Itoa(used))
	h.Set(github.HeaderRateReset, strconv.FormatInt(reset.Unix(), 10))
	h.Set(github.HeaderRateResource, "core")
}

// injectedRateLimit answers a write with a primary or secondary rate-limit
// error if RateLimitNext or SecondaryLimitNext asked for one.
func (g *GitHub) injectedRateLimit(w http.ResponseWriter, c caller) bool {
	g.mu.Lock()
	primary := g.primaryLeft > 0
	secondary := !primary && g.secondaryLeft > 0
	reset, retryAfter := g.primaryReset, g.retryAfter
	switch {
	case primary:
		g.primaryLeft--
	case secondary:
		g.secondaryLeft--
	}
	g.mu.Unlock()
	switch {
	case primary:
		w.Header().Set(github.HeaderRateRemaining, "0")
		w.Header().Set(github.HeaderRateUsed, strconv.Itoa(rateLimit))
		w.Header().Set(github.HeaderRateReset, strconv.FormatInt(reset.Unix(), 10))
		writeJSON(w, http.StatusForbidden, github.ErrorResponse{
			Message:          fmt.Sprintf("API rate limit exceeded for installation ID %d.", c.installationID),
			DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
		})
	case secondary:
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Round(time.Second)/time.Second)))
		writeJSON(w, http.StatusForbidden, github.ErrorResponse{
			Message:          "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
			DocumentationURL: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
		})
	}
	return primary || secondary
}

// checkJWT verifies an App JWT as GitHub does: RS256 signed with the App's
// key, issued by the App's ID, not expired, expiring at most 10 minutes
// after it was issued.
func (g *GitHub) checkJWT(r *http.Request) (ok bool, msg string) {
	const undecodable = "A JSON web token could not be decoded"
	raw, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		return false, undecodable
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodRS256 {
			return nil, fmt.Errorf("signing method %v", t.Header["alg"])
		}
		return &g.key.PublicKey, nil
	})
	switch {
	case err != nil:
		return false, undecodable
	case claims.Issuer != strconv.FormatInt(appID, 10):
		return false, "'Issuer' claim ('iss') must be an Integer"
	case claims.ExpiresAt == nil || claims.IssuedAt == nil:
		return false, "Missing 'issued at' claim ('iat') or 'expiration time' claim ('exp')"
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute+time.Second:
		return false, "'Expiration time' claim ('exp') is too far in the future"
	}
	return true, ""
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers GitHub's JSON error body.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, github.ErrorResponse{Message: message, DocumentationURL: docsURL})
}

// invalid answers 422 the way GitHub answers a request body its schema
// refuses.
func invalid(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusUnprocessableEntity, "Invalid request.\n\n"+fmt.Sprintf(format, args...))
}

// decode reads a JSON request body into v, answering 400 as GitHub does
// when it is not JSON.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return false
	}
	return true
}

// pathID reads an int64 path parameter, answering 404 when it is none.
func pathID(w http.ResponseWriter, r *http.Request, name string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return 0, false
	}
	return id, true
}

// paging reads page and per_page (default 30, at most 100).
func paging(r *http.Request) (page, perPage int) {
	page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	perPage, _ = strconv.Atoi(r.URL.Query().Get("per_page"))
	if page < 1 {
		page = 1
	}
	if perPage < 1 {
		perPage = 30
	}
	return page, min(perPage, 100)
}

// pageOf cuts page page out of n items and sets the Link header GitHub
// sends with numbered pages. It returns the bounds of the page.
func pageOf(w http.ResponseWriter, r *http.Request, n int) (from, to int) {
	page, perPage := paging(r)
	last := max((n+perPage-1)/perPage, 1)
	link := func(p int, rel string) string {
		u := *r.URL
		q := u.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s%s>; rel=%q", "http://"+r.Host, u.RequestURI(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from = min((page-1)*perPage, n)
	return from, min(from+perPage, n)
}
