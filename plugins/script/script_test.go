package script

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchhq/orch/plugins"
)

func opCtx(dir string, inputs map[string]any) (*plugins.OperationContext, *[]string) {
	var mu sync.Mutex
	var logs []string
	return &plugins.OperationContext{
		Deployment: "d", Node: "web", Instance: "web_1", Operation: "create", Dir: dir,
		Properties: map[string]any{"port": int64(80)},
		Inputs:     inputs,
		Runtime:    map[string]any{},
		Log: func(level, msg string) {
			mu.Lock()
			logs = append(logs, level+": "+msg)
			mu.Unlock()
		},
	}, &logs
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	hostile := "x; touch " + filepath.Join(dir, "pwned") + " $(id)"
	tests := []struct {
		name        string
		inputs      map[string]any
		wantErr     string
		recoverable bool
		check       func(t *testing.T, op *plugins.OperationContext, logs []string)
	}{
		{
			name:   "inputs are environment variables, never spliced into a shell",
			inputs: map[string]any{"command": []any{"sh", "-c", `printf '%s|%s|%s\n' "$NAME" "$COUNT" "$ORCH_NODE"`}, "NAME": hostile, "COUNT": int64(3)},
			check: func(t *testing.T, op *plugins.OperationContext, logs []string) {
				if len(logs) != 1 || logs[0] != "info: "+hostile+"|3|web" {
					t.Errorf("logs = %q", logs)
				}
				if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
					t.Error("a value was run as a command")
				}
			},
		},
		{
			name:   "arguments are passed as they are",
			inputs: map[string]any{"command": []any{"printf", "%s\n", "$(id); rm -rf /"}},
			check: func(t *testing.T, op *plugins.OperationContext, logs []string) {
				if len(logs) != 1 || logs[0] != "info: $(id); rm -rf /" {
					t.Errorf("logs = %q", logs)
				}
			},
		},
		{
			name:   "runtime properties from ORCH_RUNTIME_FILE",
			inputs: map[string]any{"command": []any{"sh", "-c", `echo "ip=10.0.0.7" >> "$ORCH_RUNTIME_FILE"; echo "port=$(echo "$ORCH_PROPERTIES" | tr -dc 0-9)" >> "$ORCH_RUNTIME_FILE"`}},
			check: func(t *testing.T, op *plugins.OperationContext, logs []string) {
				if op.Runtime["ip"] != "10.0.0.7" || op.Runtime["port"] != "80" {
					t.Errorf("runtime = %v", op.Runtime)
				}
			},
		},
		{
			name:    "failure carries the last stderr lines",
			inputs:  map[string]any{"command": []any{"sh", "-c", "echo no space left >&2; exit 1"}},
			wantErr: "no space left",
		},
		{
			name:        "exit 75 is recoverable",
			inputs:      map[string]any{"command": []any{"sh", "-c", "exit 75"}},
			wantErr:     "exit status 75",
			recoverable: true,
		},
		{
			name:    "missing command",
			inputs:  map[string]any{},
			wantErr: `input "command" is missing`,
		},
		{
			name:    "bad environment name",
			inputs:  map[string]any{"command": []any{"true"}, "BAD NAME": "x"},
			wantErr: "cannot be an environment variable name",
		},
		{
			name:    "unknown program",
			inputs:  map[string]any{"command": "./no-such-script.sh"},
			wantErr: "start ./no-such-script.sh",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, logs := opCtx(dir, tt.inputs)
			err := Run(context.Background(), op)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if rec, _ := plugins.IsRecoverable(err); rec != tt.recoverable {
				t.Errorf("recoverable = %v, want %v", rec, tt.recoverable)
			}
			if tt.check != nil {
				tt.check(t, op, *logs)
			}
		})
	}
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "child-survived")
	op, _ := opCtx(dir, map[string]any{"command": []any{"sh", "-c", "(sleep 1; touch " + marker + ") & sleep 30"}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := Run(ctx, op); err == nil {
		t.Fatal("no error from a cancelled command")
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Error("a child of the cancelled command kept running")
	}
}

// A script sees only an allow-list of orch's environment: not the Calisti
// token, not another deployment's sensitive input, not the SSH agent.
func TestScriptsSeeOnlyAnAllowListOfOrchsEnvironment(t *testing.T) {
	t.Setenv("ORCH_CALISTI_TOKEN", "calisti-secret")
	t.Setenv("ORCH_INPUT_PASSWORD", "other-deployment-secret")
	t.Setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
	t.Setenv("LC_TIME", "C")
	op, logs := opCtx(t.TempDir(), map[string]any{"command": []any{"env"}, "GIVEN": "yes"})
	if err := Run(context.Background(), op); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(*logs, "\n")
	for _, leaked := range []string{"calisti-secret", "other-deployment-secret", "SSH_AUTH_SOCK"} {
		if strings.Contains(out, leaked) {
			t.Errorf("the script sees %s:\n%s", leaked, out)
		}
	}
	for _, kept := range []string{"PATH=", "LC_TIME=C", "GIVEN=yes", "ORCH_NODE=web"} {
		if !strings.Contains(out, kept) {
			t.Errorf("the script lacks %s:\n%s", kept, out)
		}
	}
}

// A script's end is its program's end: a background child that keeps its
// output open (even one gone with setsid) does not hold the operation, and
// a line of megabytes does not block the program writing it.
func TestScriptsCannotHangOnTheirOutput(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"a background child holding stdout", "sleep 30 & echo started", "info: started"},
		{"a child that left the process group", "setsid sleep 30 & echo started", "info: started"},
		{"a line of 2 MB", "head -c 2000000 /dev/zero | tr '\\0' x; echo; echo after", "info: after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, logs := opCtx(t.TempDir(), map[string]any{"command": []any{"sh", "-c", tc.script}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			if err := Run(ctx, op); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			found := false
			for _, l := range *logs {
				if l == tc.want {
					found = true
				}
				if len(l) > maxLine+len("warning: ") {
					t.Errorf("a logged line of %d bytes", len(l))
				}
			}
			if !found {
				t.Errorf("logs lack %q (%d lines)", tc.want, len(*logs))
			}
		})
	}
}
