package setup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium returns the path of a Chromium, or skips the test.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it): skipping the setup page's browser test")
	return ""
}

// browser starts a headless Chromium with a fresh profile and no traffic
// of its own (no sandbox: the tests run as root).
func browser(t *testing.T) context.Context {
	path := chromium(t)
	profile := t.TempDir()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 1000),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	// Cleanups run last-in first-out: the browser exits before its
	// profile folder is removed.
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// In a real browser: open the page, press the button, let GitHub (the
// fake) send the browser back, and find bot.yaml written and the install
// link on the page. PVNBOT_SCREENSHOT_DIR=DIR saves the two pages as PNG files.
func TestBrowserRegisters(t *testing.T) {
	ctx := browser(t)
	gh := newFakeGitHub(t)
	cfg := testConfig(gh, t.TempDir())
	r := startSetup(t, cfg)

	step := func(a chromedp.Action[chromedp.Void]) {
		t.Helper()
		_, err := chromedp.Run(ctx, a)
		require.NoError(t, err, r.out.String())
	}
	value := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		require.NoError(t, err, r.out.String())
		return v
	}
	screenshot := func() []byte {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		return png
	}

	step(chromedp.Navigate(r.base + "/"))
	step(chromedp.WaitVisible(chromedp.ID("create")))
	assert.Equal(t, "Register pvnbot as a GitHub App", value(chromedp.Title()))
	assert.Equal(t, "Create the GitHub App on "+gh.srv.Listener.Addr().String(), value(chromedp.Text(chromedp.ID("create"))))
	startShot := screenshot()

	step(chromedp.Click(chromedp.ID("create")))
	step(chromedp.WaitVisible(chromedp.ID("install")))
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("install"), "href"))
	require.NoError(t, err)
	assert.Equal(t, chromedp.AttributeResult{Value: gh.URL() + "/apps/pvnbot/installations/new", Exists: true}, href)
	assert.Regexp(t, `^`+r.base+CallbackPath+`\?code=[0-9a-f]+&state=[0-9a-f]+$`, value(chromedp.Location()))
	doneShot := screenshot()

	app, err := r.wait(t)
	require.NoError(t, err, r.out.String())
	assert.Equal(t, int64(4242), app.ID)
	checkBotYAML(t, cfg.Path, gh, 4242)

	if dir := os.Getenv("PVNBOT_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "setup-start.png"), startShot, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "setup-done.png"), doneShot, 0o644))
	}
}
