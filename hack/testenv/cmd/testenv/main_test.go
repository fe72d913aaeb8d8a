package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestAliveOnlyForTheEnvironmentsProcesses: a pid file counts as a running
// component only when its pid runs one of the cached binaries. One that
// outlived a reboot names whatever got the pid since (CI once took such a
// process for a running apiserver, and waited for it in vain).
func TestAliveOnlyForTheEnvironmentsProcesses(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("ORCH_TESTENV_DIR", t.TempDir())
	if err := os.MkdirAll(path("pids"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cacheBin(), 0o755); err != nil {
		t.Fatal(err)
	}
	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	// The same program, once from the cache and once from elsewhere.
	cached := filepath.Join(cacheBin(), "sleep")
	copyFile(t, sleepBin, cached)
	ours := startSleep(t, cached)
	other := startSleep(t, sleepBin)
	exited := exec.Command(sleepBin, "0")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, pidFile string
		want          bool
	}{
		{"a process running a cached binary", strconv.Itoa(ours), true},
		{"another program's process (a pid reused after a reboot)", strconv.Itoa(other), false},
		{"this test's own process", strconv.Itoa(os.Getpid()), false},
		{"a process that has exited", strconv.Itoa(exited.Process.Pid), false},
		{"not a pid", "apiserver", false},
		{"no pid file", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(path("pids", "c.pid"))
			if tc.pidFile != "" {
				if err := os.WriteFile(path("pids", "c.pid"), []byte(tc.pidFile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, got := alive("c"); got != tc.want {
				t.Errorf("alive = %v, want %v", got, tc.want)
			}
		})
	}
}

func startSleep(t *testing.T, bin string) int {
	t.Helper()
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
