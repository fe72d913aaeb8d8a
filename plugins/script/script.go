// Package script is orch's script plugin (after Cloudify's): an operation
// that runs a local command with the operation's inputs as its environment,
// so a deployment does real work with no cluster at all.
//
// Inputs: `command` (a list: the program and its arguments, never run through
// a shell; a single string is a program without arguments), optional `cwd`
// (relative to the blueprint), and any other input, exported as an
// environment variable of the same name (strings as they are, other values
// as JSON). orch also sets ORCH_DEPLOYMENT, ORCH_NODE, ORCH_INSTANCE,
// ORCH_OPERATION, ORCH_PROPERTIES (JSON) and ORCH_RUNTIME_PROPERTIES (JSON);
// a relationship operation also gets ORCH_RELATIONSHIP_TYPE,
// ORCH_RELATIONSHIP_SIDE, ORCH_SOURCE_NODE, ORCH_SOURCE_INSTANCE,
// ORCH_TARGET_NODE and ORCH_TARGET_INSTANCE.
// Of orch's own environment it sees only PATH, HOME, USER, LOGNAME, SHELL,
// LANG, LANGUAGE, LC_*, TZ and TMPDIR.
// The command may write `key=value` lines to the file named by
// ORCH_RUNTIME_FILE to set runtime properties of the instance. Exit status 75
// (EX_TEMPFAIL) marks the failure as recoverable: orch retries it.
package script

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orchhq/orch/plugins"
)

// Name is the operation implementation name blueprints use.
const Name = "script"

// ExitTempFail is the exit status that marks a recoverable failure.
const ExitTempFail = 75

// Plugin registers the script operation.
type Plugin struct{}

// Register adds the "script" operation.
func (Plugin) Register(r *plugins.Registry) error {
	return r.RegisterOperation(Name, plugins.OperationFunc(Run))
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Run runs the operation's command.
func Run(ctx context.Context, op *plugins.OperationContext) error {
	argv, err := commandOf(op.Inputs["command"])
	if err != nil {
		return fmt.Errorf("script %s.%s: %w", op.Node, op.Operation, err)
	}
	dir := op.Dir
	if cwd, ok := op.Inputs["cwd"].(string); ok && cwd != "" {
		if filepath.IsAbs(cwd) {
			dir = cwd
		} else {
			dir = filepath.Join(op.Dir, cwd)
		}
	}
	prog := argv[0]
	if strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		prog = filepath.Join(op.Dir, prog)
	}

	runtimeFile, err := os.CreateTemp("", "orch-runtime-*")
	if err != nil {
		return fmt.Errorf("script %s.%s: runtime properties file: %w", op.Node, op.Operation, err)
	}
	runtimeFile.Close()
	defer os.Remove(runtimeFile.Name())

	env, err := environment(op, runtimeFile.Name())
	if err != nil {
		return fmt.Errorf("script %s.%s: %w", op.Node, op.Operation, err)
	}

	cmd := exec.CommandContext(ctx, prog, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	// Its own process group, so a timeout or cancel stops the children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	// exec copies the output (its copies are bound by WaitDelay once the
	// program has ended): a background child that keeps stdout open, even
	// one that left the process group with setsid, cannot hold the
	// operation past its end.
	var tail lastLines
	logf := func(level string) func(string) {
		return func(line string) {
			if level == "warning" {
				tail.add(line)
			}
			if op.Log != nil {
				op.Log(level, line)
			}
		}
	}
	stdout, stderr := &lineWriter{emit: logf("info")}, &lineWriter{emit: logf("warning")}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("script %s.%s: start %s: %w", op.Node, op.Operation, argv[0], err)
	}
	err = cmd.Wait()
	stdout.flush()
	stderr.flush()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The program ended; what still held its output was cut off.
		err = nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("script %s.%s: %w", op.Node, op.Operation, ctx.Err())
	}
	if err != nil {
		var exitErr *exec.ExitError
		msg := fmt.Sprintf("script %s.%s: %s: %v", op.Node, op.Operation, argv[0], err)
		if t := tail.String(); t != "" {
			msg += ": " + t
		}
		if errors.As(err, &exitErr) && exitErr.ExitCode() == ExitTempFail {
			return plugins.Recoverable(errors.New(msg))
		}
		return errors.New(msg)
	}
	return readRuntime(runtimeFile.Name(), op.Runtime)
}

func commandOf(v any) ([]string, error) {
	switch c := v.(type) {
	case string:
		if c == "" {
			return nil, errors.New(`input "command" is empty`)
		}
		return []string{c}, nil
	case []any:
		if len(c) == 0 {
			return nil, errors.New(`input "command" is an empty list`)
		}
		out := make([]string, len(c))
		for i, a := range c {
			s, ok := a.(string)
			if !ok {
				s = fmt.Sprint(a)
			}
			out[i] = s
		}
		return out, nil
	case nil:
		return nil, errors.New(`input "command" is missing: give the program and its arguments, such as command = ["touch", "file"]`)
	}
	return nil, fmt.Errorf(`input "command" must be a list of strings, not %T`, v)
}

// inherited are the variables of orch's own environment a script sees:
// what a program needs to run, nothing of orch's (no ORCH_* token, no
// other deployment's ORCH_INPUT_*, no SSH_AUTH_SOCK). Anything else is
// given as an operation input.
var inherited = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}

func environment(op *plugins.OperationContext, runtimeFile string) ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(inherited, name) || strings.HasPrefix(name, "LC_") {
			env = append(env, kv)
		}
	}
	props, err := json.Marshal(op.Properties)
	if err != nil {
		return nil, err
	}
	runtime, err := json.Marshal(op.Runtime)
	if err != nil {
		return nil, err
	}
	env = append(env,
		"ORCH_DEPLOYMENT="+op.Deployment,
		"ORCH_EXECUTION="+op.Execution,
		"ORCH_NODE="+op.Node,
		"ORCH_INSTANCE="+op.Instance,
		"ORCH_OPERATION="+op.Operation,
		"ORCH_PROPERTIES="+string(props),
		"ORCH_RUNTIME_PROPERTIES="+string(runtime),
		"ORCH_RUNTIME_FILE="+runtimeFile,
	)
	if r := op.Relationship; r != nil {
		env = append(env,
			"ORCH_RELATIONSHIP_TYPE="+r.Type,
			"ORCH_RELATIONSHIP_SIDE="+r.Side,
			"ORCH_SOURCE_NODE="+r.SourceNode,
			"ORCH_SOURCE_INSTANCE="+r.SourceInstance,
			"ORCH_TARGET_NODE="+r.TargetNode,
			"ORCH_TARGET_INSTANCE="+r.TargetInstance,
		)
	}
	for k, v := range op.Inputs {
		if k == "command" || k == "cwd" {
			continue
		}
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("input %q cannot be an environment variable name", k)
		}
		s, ok := v.(string)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("input %q: %w", k, err)
			}
			s = string(b)
		}
		env = append(env, k+"="+s)
	}
	return env, nil
}

func readRuntime(path string, into map[string]any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read runtime properties: %w", err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("runtime properties file line %d: want key=value, got %q", i+1, line)
		}
		if into != nil {
			into[strings.TrimSpace(k)] = v
		}
	}
	return nil
}

// maxLine bounds one line of a script's output: a longer one is cut into
// pieces of this size, so no line blocks the program writing it.
const maxLine = 64 << 10

// lineWriter turns a program's output into lines for the log.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLine {
				w.emit(string(w.buf[:maxLine]))
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
				continue
			}
			return len(p), nil
		}
		line := w.buf[:i]
		if len(line) > maxLine {
			line = line[:maxLine]
		}
		w.emit(strings.TrimSuffix(string(line), "\r"))
		w.buf = append(w.buf[:0], w.buf[i+1:]...)
	}
}

// flush emits what is left without a newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
}

// lastLines keeps the last few lines of stderr for the error message.
type lastLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lastLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 5 {
		l.lines = l.lines[1:]
	}
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for i, s := range l.lines {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(s)
	}
	return b.String()
}
