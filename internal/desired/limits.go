package desired

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// Limits of one rendering (SPEC §8). A template that would pass one is
// stopped as soon as it does, and reported at its line: no config makes
// the bot use unbounded memory or time.
const (
	// MaxFieldBytes bounds one rendered field: a template's output.
	MaxFieldBytes = 1 << 20
	// MaxJobBytes bounds one rendered job: its fields, its environment and
	// its job file together.
	MaxJobBytes = 4 << 20
	// MaxCommitBytes bounds what the targets of one commit render to, with
	// what their template functions produce.
	MaxCommitBytes = 256 << 20

	// maxSteps bounds the range iterations and template calls of one
	// rendering, and maxCommitSteps those of one commit.
	maxSteps       = 100_000
	maxCommitSteps = 10_000_000
	// maxWork bounds what the functions of one rendering produce (printf,
	// print, html, js, urlquery), written out or not.
	maxWork = 4 * MaxFieldBytes
)

// limitError is a limit reached while rendering.
type limitError struct {
	msg string
	at  string // "name:line:col" of what reached it; empty: unknown
}

func (e *limitError) Error() string { return e.msg }

// commitLimit ends the message of every limit of one commit, which
// onceCommitLimit says once.
const commitLimit = "the limit of one commit"

func mib(n int) string { return strconv.Itoa(n>>20) + " MiB" }

// budget is what is left of the commit's rendering, and its limits.
type budget struct {
	bytes, steps       int
	maxBytes, maxSteps int
}

func commitBudget() *budget {
	return &budget{bytes: MaxCommitBytes, steps: maxCommitSteps, maxBytes: MaxCommitBytes, maxSteps: maxCommitSteps}
}

// exhausted reports whether the commit passed one of its limits.
func (b *budget) exhausted() bool { return b.bytes <= 0 || b.steps < 0 }

// execution is the state of one rendering: what it may still write,
// compute and step through.
type execution struct {
	commit *budget
	// outLeft is what it may still write; outJob tells which limit that
	// is: the job's (true) or the field's.
	outLeft int
	outJob  bool
	work    int
	steps   int
	sites   []parse.Node // what pvnStep's argument stands for
	tree    *parse.Tree
}

// allow lets the rendering write n more bytes, if the limits do.
func (x *execution) allow(n int) error {
	if n > x.outLeft {
		if x.outJob {
			return &limitError{msg: "the job renders to more than " + mib(MaxJobBytes) + ": the limit of one rendered job (its fields, env and job file together)"}
		}
		return &limitError{msg: "renders to more than " + mib(MaxFieldBytes) + ": the limit of one rendered field"}
	}
	if err := x.charge(n); err != nil {
		return err
	}
	x.outLeft -= n
	return nil
}

// charge counts n bytes against the commit.
func (x *execution) charge(n int) error {
	if x.commit.bytes -= n; x.commit.bytes < 0 {
		x.commit.bytes = 0
		return &limitError{msg: "the targets of this commit render to more than " + mib(x.commit.maxBytes) + ": " + commitLimit}
	}
	return nil
}

// step is called at the start of every template body and range iteration.
func (x *execution) step(site int) (string, error) {
	x.steps++
	x.commit.steps--
	if x.steps <= maxSteps && x.commit.steps >= 0 {
		return "", nil
	}
	at := ""
	if site >= 0 && site < len(x.sites) && x.tree != nil {
		at, _ = x.tree.ErrorContext(x.sites[site])
	}
	if x.commit.steps < 0 {
		return "", &limitError{at: at, msg: fmt.Sprintf("the targets of this commit take more than %d range iterations and template calls to render: %s", x.commit.maxSteps, commitLimit)}
	}
	return "", &limitError{at: at, msg: fmt.Sprintf("more than %d range iterations and template calls: the limit of one rendering", maxSteps)}
}

// produce makes the result of a function whose size is at most bound,
// when the limits allow it.
func (x *execution) produce(fn string, bound int, mk func() string) (string, error) {
	if bound > MaxFieldBytes {
		return "", &limitError{msg: fmt.Sprintf("%s could produce %d bytes: more than %s, the limit of one rendered field", fn, bound, mib(MaxFieldBytes))}
	}
	if x.work+bound > maxWork {
		return "", &limitError{msg: fmt.Sprintf("its functions produce more than %s: the limit of one rendering", mib(maxWork))}
	}
	out := mk()
	x.work += len(out)
	return out, x.charge(len(out))
}

// funcs are the builtins whose result may be large, bounded: each checks
// an upper bound of its result's size before making it.
func (ts *templates) funcs() template.FuncMap {
	x := func() *execution { return &ts.x }
	escaper := func(name string, factor int, esc func(...any) string) func(...any) (string, error) {
		return func(args ...any) (string, error) {
			return x().produce(name, factor*argsSize(args), func() string { return esc(args...) })
		}
	}
	return template.FuncMap{
		"pvnStep": func(site int) (string, error) { return x().step(site) },
		"printf": func(format string, args ...any) (string, error) {
			return x().produce("printf", printfBound(format, args), func() string { return fmt.Sprintf(format, args...) })
		},
		"print": func(args ...any) (string, error) {
			return x().produce("print", argsSize(args), func() string { return fmt.Sprint(args...) })
		},
		"println": func(args ...any) (string, error) {
			return x().produce("println", argsSize(args)+1, func() string { return fmt.Sprintln(args...) })
		},
		// &#34; is 5 bytes for 1, \u003C 6, %XX 3.
		"html":     escaper("html", 5, template.HTMLEscaper),
		"js":       escaper("js", 6, template.JSEscaper),
		"urlquery": escaper("urlquery", 3, template.URLQueryEscaper),
	}
}

// argsSize bounds what fmt.Sprint makes of args.
func argsSize(args []any) int {
	n := 0
	for _, a := range args {
		n += valueSize(a) + 1
	}
	return n
}

// valueSize bounds the size of a value printed with %v (or %s, %d...):
// what templates can hold is strings, numbers, booleans, the parameters and
// the builtins.
func valueSize(v any) int {
	switch v := v.(type) {
	case nil, bool:
		return 8
	case string:
		return len(v)
	case []byte:
		return 2 * len(v)
	case imageParam:
		return len(v.Ref) + len(v.Tag) + 16
	case named:
		return len(v.Name) + 8
	case builtins:
		return len(v.Service.Name) + len(v.Application.Name) + len(v.ReleaseChannel.Name) + len(v.Runtime.Name) + len(v.Commit) + 96
	case map[string]any:
		n := 16
		for k, e := range v {
			n += len(k) + valueSize(e) + 4
		}
		return n
	case *tmplData:
		return valueSize(v.Params) + valueSize(v.Builtins) + 32
	case tmplData:
		return valueSize(v.Params) + valueSize(v.Builtins) + 32
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return 72 // 64 binary digits, a sign and a prefix
	case float32, float64:
		return 340 // %f of 1e308
	case complex64, complex128:
		return 700
	}
	return 1024
}

// printfBound bounds what fmt.Sprintf(format, args...) makes: the format,
// plus for each verb its width and precision (fmt caps each at 10⁶) and ten
// times the largest argument (%q and %x expand what they print).
func printfBound(format string, args []any) int {
	largest := 0
	for _, a := range args {
		largest = max(largest, valueSize(a))
	}
	n := len(format)
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		n += 10*largest + 32
		// Flags, [n], width and precision, up to the verb.
		for i++; i < len(format) && strings.IndexByte("+-# 0[].*0123456789", format[i]) >= 0; i++ {
			switch c := format[i]; {
			case c == '*':
				n += 1_000_000
			case c >= '1' && c <= '9':
				j := i
				for j < len(format) && format[j] >= '0' && format[j] <= '9' {
					j++
				}
				w, err := strconv.Atoi(format[i:j])
				if err != nil || w > 1_000_000 {
					w = 1_000_000
				}
				n += w
				i = j - 1
			}
		}
	}
	return n
}

// instrument makes t count its steps: a call of pvnStep N starts the body
// of each range and of each template but the one executed (what others
// call), where N indexes the sites returned (the range, or the template's
// body), for error messages. A template without them runs in time linear
// in its size, and is left as it is.
func instrument(t *template.Template) ([]parse.Node, error) {
	trees := t.Templates()
	slices.SortFunc(trees, func(a, b *template.Template) int { return strings.Compare(a.Name(), b.Name()) })
	var sites []parse.Node
	var lists []*parse.ListNode
	for _, tt := range trees {
		if tt.Tree == nil || tt.Root == nil {
			continue
		}
		if tt != t {
			sites, lists = append(sites, tt.Root), append(lists, tt.Root)
		}
		var walk func(l *parse.ListNode)
		walk = func(l *parse.ListNode) {
			if l == nil {
				return
			}
			for _, n := range l.Nodes {
				switch n := n.(type) {
				case *parse.RangeNode:
					if n.List != nil {
						sites, lists = append(sites, n), append(lists, n.List)
					}
					walk(n.List)
					walk(n.ElseList)
				case *parse.IfNode:
					walk(n.List)
					walk(n.ElseList)
				case *parse.WithNode:
					walk(n.List)
					walk(n.ElseList)
				}
			}
		}
		walk(tt.Root)
	}
	if len(sites) == 0 {
		return nil, nil
	}
	// One parse makes every call: {{pvnStep 0}}{{pvnStep 1}}...
	var b strings.Builder
	for i := range sites {
		fmt.Fprintf(&b, "{{pvnStep %d}}", i)
	}
	calls, err := template.New("pvn-steps").Funcs(template.FuncMap{"pvnStep": func(int) string { return "" }}).Parse(b.String())
	if err != nil {
		return nil, err
	}
	if len(calls.Tree.Root.Nodes) != len(lists) {
		return nil, errors.New("instrument template: step calls do not match")
	}
	for i, l := range lists {
		l.Nodes = append([]parse.Node{calls.Tree.Root.Nodes[i]}, l.Nodes...)
	}
	return sites, nil
}

var execLocationRE = regexp.MustCompile(`^template: ([^\n]*?:\d+:\d+): `)

// worded is a limit reached by the rendering called name, worded at the
// line and column of what reached it when known; ok is false when err is
// not a limit.
func worded(name string, err error) (*limitError, bool) {
	var le *limitError
	if !errors.As(err, &le) {
		return nil, false
	}
	at := le.at
	if at == "" {
		if m := execLocationRE.FindStringSubmatch(err.Error()); m != nil {
			at = m[1]
		}
	}
	if at == "" {
		at = name
	}
	return &limitError{msg: "template: " + at + ": " + le.msg, at: at}, true
}

// hasNUL reports whether s holds a NUL byte.
func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }
