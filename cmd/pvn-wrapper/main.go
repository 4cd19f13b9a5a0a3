// Command pvn-wrapper runs a job's program inside a container and prints how
// it ended as one JSON line on stdout, so that the runner reading the pod's
// log gets the exit code, stdout and stderr apart:
//
//	pvn-wrapper exec [--success-exit-codes N,...] [--output-limit BYTES] -- CMD ARGS...
//	pvn-wrapper version
//
// It exits with the program's exit code (0 for the codes listed in
// --success-exit-codes; the JSON keeps the real one), 128+N when signal N
// killed it, and 127 when it could not start (exitCode -1 in the JSON).
// SIGINT and SIGTERM are passed on to the program. Bad usage exits 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/pvnbot/pvnbot/internal/wrapper"
)

const (
	exitUsage       = 2
	exitCannotStart = 127
)

const usage = `usage:
  pvn-wrapper exec [--success-exit-codes N,...] [--output-limit BYTES] -- CMD ARGS...
  pvn-wrapper version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "exec":
		return execCommand(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "pvn-wrapper output format %s, %s\n", wrapper.Version, runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pvn-wrapper: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
}

func execCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pvn-wrapper exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	successCodes := fs.String("success-exit-codes", "", "comma-separated exit codes that make the wrapper exit 0")
	outputLimit := fs.Int("output-limit", wrapper.DefaultOutputLimit, "bytes kept of each of stdout and stderr (the tail)")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "pvn-wrapper exec: %v\n%s", err, usage)
		return exitUsage
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintf(stderr, "pvn-wrapper exec: no command given\n%s", usage)
		return exitUsage
	}
	success, err := parseExitCodes(*successCodes)
	if err != nil {
		fmt.Fprintf(stderr, "pvn-wrapper exec: --success-exit-codes: %v\n%s", err, usage)
		return exitUsage
	}
	if *outputLimit <= 0 {
		fmt.Fprintf(stderr, "pvn-wrapper exec: --output-limit must be a positive number of bytes\n%s", usage)
		return exitUsage
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	out, err := wrapper.Exec(context.Background(), wrapper.Options{OutputLimit: *outputLimit, Signals: signals}, argv)
	if err != nil {
		out.ExitCode = -1
		out.ExecError = err.Error()
	}
	line, err := out.MarshalLine()
	if err != nil {
		fmt.Fprintf(stderr, "pvn-wrapper: %v\n", err)
		return exitCannotStart
	}
	if _, err := stdout.Write(line); err != nil {
		fmt.Fprintf(stderr, "pvn-wrapper: write output: %v\n", err)
	}
	switch {
	case out.ExitCode == -1:
		return exitCannotStart
	case success[out.ExitCode]:
		return 0
	default:
		return out.ExitCode
	}
}

func parseExitCodes(s string) (map[int]bool, error) {
	codes := map[int]bool{}
	if s == "" {
		return codes, nil
	}
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 255 {
			return nil, errors.New("want exit codes 0-255 separated by commas, got " + strconv.Quote(f))
		}
		codes[n] = true
	}
	return codes, nil
}
