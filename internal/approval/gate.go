package approval

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pvnbot/pvnbot/internal/clock"
)

// Person is who asks for an approval.
type Person struct {
	Login string
	Type  string // GitHub's user type: "User", "Bot", "Organization"
}

// Roles reads a person's role on a repository: the role_name of GitHub's
// collaborator permission (admin, maintain, write, triage, read, or none).
type Roles interface {
	RoleName(ctx context.Context, owner, repo, login string) (string, error)
}

// approvingRoles are the roles that may approve.
var approvingRoles = map[string]bool{"admin": true, "maintain": true, "write": true}

// roleTTL is how long a role read from GitHub is trusted.
const roleTTL = time.Minute

// Gate decides who may approve.
type Gate struct {
	roles Roles
	clock clock.Clock

	mu    sync.Mutex
	cache map[string]cachedRole
}

type cachedRole struct {
	role string
	at   time.Time
}

// NewGate returns a Gate asking roles, and trusting an answer for at most
// a minute.
func NewGate(roles Roles, c clock.Clock) *Gate {
	if c == nil {
		c = clock.Real{}
	}
	return &Gate{roles: roles, clock: c, cache: map[string]cachedRole{}}
}

// Check returns "" when who may approve in owner/repo, else the reason to
// tell them; err is a failure to ask GitHub (try again), with no reason.
func (g *Gate) Check(ctx context.Context, owner, repo string, who Person) (reason string, err error) {
	if who.Type == "Bot" || strings.HasSuffix(who.Login, "[bot]") {
		return fmt.Sprintf("@%s is a bot: approvals are given by people.", who.Login), nil
	}
	role, err := g.role(ctx, owner, repo, who.Login)
	if err != nil {
		return "", err
	}
	if !approvingRoles[role] {
		if role == "" || role == "none" {
			role = "no"
		}
		return fmt.Sprintf("@%s has %s access to %s/%s: approving needs write, maintain or admin.", who.Login, role, owner, repo), nil
	}
	return "", nil
}

func (g *Gate) role(ctx context.Context, owner, repo, login string) (string, error) {
	key := strings.ToLower(owner + "/" + repo + "/" + login)
	now := g.clock.Now()
	g.mu.Lock()
	c, ok := g.cache[key]
	g.mu.Unlock()
	if ok && now.Sub(c.at) < roleTTL {
		return c.role, nil
	}
	role, err := g.roles.RoleName(ctx, owner, repo, login)
	if err != nil {
		return "", fmt.Errorf("read the role of %s on %s/%s: %w", login, owner, repo, err)
	}
	g.mu.Lock()
	g.cache[key] = cachedRole{role: role, at: now}
	g.mu.Unlock()
	return role, nil
}
