// Command testenv brings orch's real test environment up and down: RabbitMQ,
// the clusters' etcd, orch's own etcd (ORCH_ETCD_ENDPOINTS, for replicas of orch
// serve), two Kubernetes control planes (primary and peer) with kwok's
// simulated nodes, the CRDs orch's workflows write, and an sshd with kubectl
// against the primary cluster. It writes one env file that tests, the demo
// and a shell can source.
//
//	go run ./cmd/testenv up      # idempotent: reuses what already runs
//	go run ./cmd/testenv down    # stops every process it started
//	go run ./cmd/testenv status  # exit 0 when everything is up
//
// Binaries are built once and cached by version under
// ${XDG_CACHE_HOME:-~/.cache}/orch/testenv/<version>/bin; the running
// environment lives under ${ORCH_TESTENV_DIR:-~/.local/state/orch/testenv}.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	k8sVersion  = "v1.34.4"
	kwokVersion = "v0.7.0"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: testenv up|down|status")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up()
	case "down":
		err = down()
	case "status":
		err = status()
	default:
		err = fmt.Errorf("unknown command %q (want up, down or status)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...)
}

func home() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return os.TempDir()
	}
	return h
}

func cacheBin() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		base = filepath.Join(home(), ".cache")
	}
	return filepath.Join(base, "orch", "testenv", k8sVersion, "bin")
}

func runDir() string {
	if d := os.Getenv("ORCH_TESTENV_DIR"); d != "" {
		return d
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		base = filepath.Join(home(), ".local", "state")
	}
	return filepath.Join(base, "orch", "testenv")
}

func path(parts ...string) string { return filepath.Join(append([]string{runDir()}, parts...)...) }

// ports are chosen once and kept in ports.json, so a reused environment
// keeps its addresses.
type ports struct {
	EtcdClient, EtcdPeer int
	// OrchEtcdClient and OrchEtcdPeer are the etcd orch's replicas share,
	// separate from the clusters'.
	OrchEtcdClient, OrchEtcdPeer int
	API                          map[string]int
	Controller                   map[string]int
	Scheduler                    map[string]int
	Kwok                         map[string]int
	SSH                          int
}

var clusters = []string{"primary", "peer"}

func free(preferred int, taken map[int]bool) int {
	if preferred > 0 && !taken[preferred] {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", preferred)); err == nil {
			l.Close()
			taken[preferred] = true
			return preferred
		}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !taken[p] {
			taken[p] = true
			return p
		}
	}
}

func loadPorts() (*ports, error) {
	var p ports
	b, err := os.ReadFile(path("ports.json"))
	if err == nil {
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("ports.json: %w", err)
		}
		if p.OrchEtcdClient != 0 {
			return &p, nil
		}
		// An environment from before orch's etcd: its ports are added.
		taken := map[int]bool{p.EtcdClient: true, p.EtcdPeer: true, p.SSH: true}
		for _, m := range []map[string]int{p.API, p.Controller, p.Scheduler, p.Kwok} {
			for _, port := range m {
				taken[port] = true
			}
		}
		p.OrchEtcdClient, p.OrchEtcdPeer = free(2479, taken), free(2480, taken)
		b, _ = json.MarshalIndent(&p, "", "  ")
		return &p, os.WriteFile(path("ports.json"), b, 0o600)
	}
	taken := map[int]bool{}
	p = ports{API: map[string]int{}, Controller: map[string]int{}, Scheduler: map[string]int{}, Kwok: map[string]int{}}
	p.EtcdClient = free(2379, taken)
	p.EtcdPeer = free(2380, taken)
	p.OrchEtcdClient, p.OrchEtcdPeer = free(2479, taken), free(2480, taken)
	for i, c := range clusters {
		p.API[c] = free(6443+i, taken)
		p.Controller[c] = free(0, taken)
		p.Scheduler[c] = free(0, taken)
		p.Kwok[c] = free(0, taken)
	}
	p.SSH = free(2222, taken)
	b, _ = json.MarshalIndent(&p, "", "  ")
	return &p, os.WriteFile(path("ports.json"), b, 0o600)
}

// alive reports whether the process in pid file name runs.
func alive(name string) (int, bool) {
	b, err := os.ReadFile(path("pids", name+".pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	// ours finds a process that is gone as not running. A pid file that
	// outlived a reboot names whatever process got that pid since: a
	// reused pid of another program is not ours.
	return pid, ours(pid)
}

// ours reports whether process pid is one of this environment's: a live
// process (not a zombie) running one of the cached binaries, or an sshd
// with this environment's config.
func ours(pid int) bool {
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		return false
	} else if f := strings.Fields(string(stat)); len(f) > 2 && f[2] == "Z" {
		return false
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.HasPrefix(exe, cacheBin()+"/") || strings.Contains(string(cmdline), path("ssh", "sshd_config"))
}

// start runs a process in its own session, logging to logs/NAME.log.
func start(name, bin string, args ...string) error {
	if _, ok := alive(name); ok {
		logf("%s already running", name)
		return nil
	}
	logFile, err := os.OpenFile(path("logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	logf("started %s (pid %d)", name, pid)
	return os.WriteFile(path("pids", name+".pid"), []byte(strconv.Itoa(pid)), 0o600)
}

func waitFor(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v (logs in %s)", what, timeout, err, path("logs"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func httpOK(url, token string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // a readiness probe only
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func tcpOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

var aptUpdated bool

func aptInstall(pkgs ...string) error {
	if !aptUpdated {
		if err := run("apt-get", "update", "-qq"); err != nil {
			return err
		}
		aptUpdated = true
	}
	return run("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)...)
}

// ensureCollectors installs Debian's collectd with the AMQP client library
// its amqp plugin loads, and Debian's Prometheus server: their daemons are
// started by the tests that need them, each with its own configuration
// (the package's own service is not used).
func ensureCollectors() error {
	if collectorsInstalled() {
		return nil
	}
	logf("installing collectd-core with what its amqp plugin loads (librabbitmq4, libyajl2), and prometheus")
	return aptInstall(collectorPackages...)
}

// collectorPackages are collectd, the libraries its amqp plugin loads, and
// the Prometheus server.
var collectorPackages = []string{"collectd-core", "librabbitmq4", "libyajl2", "prometheus"}

func collectorsInstalled() bool {
	out, _ := exec.Command("dpkg-query", append([]string{"-W", "-f=${Status}\n"}, collectorPackages...)...).Output()
	return strings.Count(string(out), "install ok installed") == len(collectorPackages)
}

// playwrightVersion is the playwright-core the console's browser tests
// drive Debian's Chromium with (no browser is downloaded).
const playwrightVersion = "1.65.2"

// ensureBrowser installs Debian's Chromium, Node.js and, from the npm
// registry, playwright-core into the environment's directory.
func ensureBrowser() error {
	var pkgs []string
	if _, err := os.Stat(chromiumPath); err != nil {
		pkgs = append(pkgs, "chromium")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		pkgs = append(pkgs, "nodejs", "npm")
	}
	if len(pkgs) > 0 {
		logf("installing %s", strings.Join(pkgs, ", "))
		if err := aptInstall(pkgs...); err != nil {
			return err
		}
	}
	if browserInstalled() {
		return nil
	}
	dir := path("node")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"orch-testenv","private":true}`), 0o600); err != nil {
		return err
	}
	logf("installing playwright-core %s (npm)", playwrightVersion)
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "playwright-core@"+playwrightVersion)
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install playwright-core: %w", err)
	}
	return nil
}

const chromiumPath = "/usr/bin/chromium"

func browserInstalled() bool {
	if _, err := os.Stat(chromiumPath); err != nil {
		return false
	}
	b, err := os.ReadFile(path("node", "node_modules", "playwright-core", "package.json"))
	return err == nil && strings.Contains(string(b), `"version": "`+playwrightVersion+`"`)
}

func ensureRabbitMQ() error {
	// amqp-publish: a real client that is not orch's, for tests and users.
	if _, err := exec.LookPath("amqp-publish"); err != nil {
		logf("installing amqp-tools")
		if err := aptInstall("amqp-tools"); err != nil {
			return err
		}
	}
	if tcpOpen("127.0.0.1:5672") {
		return nil
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		logf("installing rabbitmq-server")
		if err := aptInstall("rabbitmq-server"); err != nil {
			return err
		}
	}
	if !tcpOpen("127.0.0.1:5672") {
		logf("starting rabbitmq-server")
		if err := run("rabbitmq-server", "-detached"); err != nil {
			return err
		}
		_ = os.WriteFile(path("rabbitmq-started-by-testenv"), nil, 0o600)
	}
	return waitFor("rabbitmq", 90*time.Second, func() error {
		if tcpOpen("127.0.0.1:5672") {
			return nil
		}
		return errors.New("port 5672 closed")
	})
}

// build makes sure every binary is in the cache, building what is missing.
func build() (map[string]string, error) {
	bin := cacheBin()
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		target := filepath.Join(bin, name)
		if _, err := os.Stat(target); err != nil {
			logf("building %s %s (once; cached in %s)", name, k8sVersion, bin)
			if err := run("go", "build", "-o", target+".tmp", "./cmd/"+name); err != nil {
				return nil, err
			}
			if err := os.Rename(target+".tmp", target); err != nil {
				return nil, err
			}
		}
		out[name] = target
	}
	kwok := filepath.Join(bin, "kwok")
	if _, err := os.Stat(kwok); err != nil {
		logf("installing kwok %s", kwokVersion)
		cmd := exec.Command("go", "install", "sigs.k8s.io/kwok/cmd/kwok@"+kwokVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=")
		cmd.Dir = os.TempDir()
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("install kwok: %w", err)
		}
	}
	out["kwok"] = kwok
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out["kubectl"] = kubectl
	} else {
		target := filepath.Join(bin, "kubectl")
		if _, err := os.Stat(target); err != nil {
			logf("building kubectl (none on PATH)")
			if err := run("go", "build", "-o", target, "./cmd/kubectl"); err != nil {
				return nil, err
			}
		}
		out["kubectl"] = target
	}
	return out, nil
}

// secrets creates the service-account key pair and the admin token once.
func secrets() (string, error) {
	if _, err := os.Stat(path("sa.key")); err != nil {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return "", err
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(path("sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
			return "", err
		}
		if err := os.WriteFile(path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
			return "", err
		}
	}
	if b, err := os.ReadFile(path("token")); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [24]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path("tokens.csv"), []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return "", err
	}
	return token, os.WriteFile(path("token"), []byte(token), 0o600)
}

func up() error {
	t0 := time.Now()
	for _, d := range []string{"pids", "logs", "ssh"} {
		if err := os.MkdirAll(path(d), 0o700); err != nil {
			return err
		}
	}
	if err := ensureRabbitMQ(); err != nil {
		return err
	}
	if err := ensureCollectors(); err != nil {
		return err
	}
	if err := ensureBrowser(); err != nil {
		return err
	}
	bins, err := build()
	if err != nil {
		return err
	}
	p, err := loadPorts()
	if err != nil {
		return err
	}
	token, err := secrets()
	if err != nil {
		return err
	}

	etcd := fmt.Sprintf("http://127.0.0.1:%d", p.EtcdClient)
	if err := start("etcd", bins["etcd"],
		"--data-dir", path("etcd-data"),
		"--listen-client-urls", etcd, "--advertise-client-urls", etcd,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.EtcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.EtcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", p.EtcdPeer),
		"--quota-backend-bytes", "4294967296", "--unsafe-no-fsync",
	); err != nil {
		return err
	}
	if err := waitFor("etcd", 30*time.Second, func() error { return httpOK(etcd+"/health", "") }); err != nil {
		return err
	}
	// orch's own etcd (replicas of orch serve share it), apart from the
	// clusters'.
	orchEtcd := fmt.Sprintf("http://127.0.0.1:%d", p.OrchEtcdClient)
	if err := start("orch-etcd", bins["etcd"],
		"--name", "orch", "--data-dir", path("orch-etcd-data"),
		"--listen-client-urls", orchEtcd, "--advertise-client-urls", orchEtcd,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.OrchEtcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", p.OrchEtcdPeer),
		"--initial-cluster", fmt.Sprintf("orch=http://127.0.0.1:%d", p.OrchEtcdPeer),
		"--unsafe-no-fsync",
	); err != nil {
		return err
	}
	if err := waitFor("orch-etcd", 30*time.Second, func() error { return httpOK(orchEtcd+"/health", "") }); err != nil {
		return err
	}

	for i, c := range clusters {
		certDir := path(c, "certs")
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			return err
		}
		if err := start(c+"-apiserver", bins["kube-apiserver"],
			"--etcd-servers", etcd, "--etcd-prefix", "/"+c,
			"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
			"--secure-port", strconv.Itoa(p.API[c]), "--cert-dir", certDir,
			"--token-auth-file", path("tokens.csv"), "--authorization-mode", "AlwaysAllow",
			"--service-account-issuer", "https://kubernetes.default.svc",
			"--service-account-key-file", path("sa.pub"),
			"--service-account-signing-key-file", path("sa.key"),
			"--service-cluster-ip-range", fmt.Sprintf("10.%d.0.0/16", 96+i),
			"--allow-privileged", "--enable-priority-and-fairness=false",
		); err != nil {
			return err
		}
	}
	for _, c := range clusters {
		url := fmt.Sprintf("https://127.0.0.1:%d/readyz", p.API[c])
		if err := waitFor(c+" apiserver", 90*time.Second, func() error { return httpOK(url, token) }); err != nil {
			return err
		}
	}
	if err := writeKubeconfigs(p, token); err != nil {
		return err
	}
	for _, c := range clusters {
		kc := path(c, "kubeconfig")
		if err := start(c+"-controller-manager", bins["kube-controller-manager"],
			"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
			"--controllers", "*", "--leader-elect=false", "--use-service-account-credentials=false",
			"--service-account-private-key-file", path("sa.key"), "--root-ca-file", path(c, "certs", "apiserver.crt"),
			"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(p.Controller[c]),
			"--kube-api-qps", "200", "--kube-api-burst", "400",
		); err != nil {
			return err
		}
		if err := start(c+"-scheduler", bins["kube-scheduler"],
			"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
			"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(p.Scheduler[c]),
			"--kube-api-qps", "200", "--kube-api-burst", "400",
		); err != nil {
			return err
		}
		if err := start(c+"-kwok", bins["kwok"],
			"--kubeconfig", kc, "--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
			"--cidr", "10.0.0.1/24", "--node-ip", "10.0.0.1",
			"--server-address", fmt.Sprintf("127.0.0.1:%d", p.Kwok[c]),
		); err != nil {
			return err
		}
	}
	kubectl := bins["kubectl"]
	for _, c := range clusters {
		if err := applyManifest(kubectl, c, nodesManifest(c)); err != nil {
			return err
		}
		if err := applyManifest(kubectl, c, crdManifest); err != nil {
			return err
		}
	}
	for _, c := range clusters {
		if err := run(kubectl, "--kubeconfig", path("kubeconfig"), "--context", c, "wait", "--for=condition=Established", "--timeout=60s",
			"crd/virtualservices.networking.istio.io", "crd/resourcesyncrules.clusterregistry.k8s.cisco.com",
			"crd/bgppeers.crd.projectcalico.org", "crd/bgpconfigurations.crd.projectcalico.org"); err != nil {
			return err
		}
		if err := run(kubectl, "--kubeconfig", path("kubeconfig"), "--context", c, "wait", "--for=condition=Ready", "--timeout=60s", "node", "--all"); err != nil {
			return err
		}
	}
	if err := startSSHD(p, kubectl); err != nil {
		return err
	}
	if err := writeEnv(p, kubectl); err != nil {
		return err
	}
	logf("environment up in %s; source %s", time.Since(t0).Round(100*time.Millisecond), path("env"))
	return nil
}

func writeKubeconfigs(p *ports, token string) error {
	var clustersYAML, contexts strings.Builder
	for _, c := range clusters {
		ca, err := os.ReadFile(path(c, "certs", "apiserver.crt"))
		if err != nil {
			return fmt.Errorf("%s serving certificate: %w", c, err)
		}
		fmt.Fprintf(&clustersYAML, "- name: %s\n  cluster:\n    server: https://127.0.0.1:%d\n    certificate-authority-data: %s\n",
			c, p.API[c], base64.StdEncoding.EncodeToString(ca))
		fmt.Fprintf(&contexts, "- name: %s\n  context:\n    cluster: %s\n    user: admin\n", c, c)
	}
	kubeconfig := func(current string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n%scontexts:\n%scurrent-context: %s\nusers:\n- name: admin\n  user:\n    token: %s\n",
			clustersYAML.String(), contexts.String(), current, token)
	}
	if err := os.WriteFile(path("kubeconfig"), []byte(kubeconfig("primary")), 0o600); err != nil {
		return err
	}
	for _, c := range clusters {
		if err := os.WriteFile(path(c, "kubeconfig"), []byte(kubeconfig(c)), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func applyManifest(kubectl, cluster, manifest string) error {
	cmd := exec.Command(kubectl, "--kubeconfig", path("kubeconfig"), "--context", cluster, "apply", "--server-side", "--force-conflicts", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apply to %s: %w\n%s", cluster, err, out)
	}
	return nil
}

// nodesManifest: primary has 6 nodes over 3 zones, peer 2 nodes.
func nodesManifest(cluster string) string {
	n, zones := 6, []string{"zone-a", "zone-b", "zone-c"}
	if cluster == "peer" {
		n, zones = 2, []string{"zone-x"}
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-node-%d", cluster, i)
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Node
metadata:
  name: %s
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: %s
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    type: kwok
    topology.kubernetes.io/zone: %s
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
`, name, name, zones[i%len(zones)])
	}
	return b.String()
}

func startSSHD(p *ports, kubectl string) error {
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		logf("installing openssh-server")
		if err := aptInstall("openssh-server", "openssh-client"); err != nil {
			return err
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	for _, k := range []string{"host_ed25519", "id_ed25519"} {
		if _, err := os.Stat(path("ssh", k)); err != nil {
			if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "orch-testenv", "-f", path("ssh", k)); err != nil {
				return err
			}
		}
	}
	client, err := os.ReadFile(path("ssh", "id_ed25519.pub"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(path("ssh", "authorized_keys"), client, 0o600); err != nil {
		return err
	}
	host, err := os.ReadFile(path("ssh", "host_ed25519.pub"))
	if err != nil {
		return err
	}
	fields := strings.Fields(string(host))
	known := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", p.SSH, fields[0], fields[1])
	if err := os.WriteFile(path("ssh", "known_hosts"), []byte(known), 0o600); err != nil {
		return err
	}
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile %s
SetEnv KUBECONFIG=%s PATH=%s:/usr/local/bin:/usr/bin:/bin
`, p.SSH, path("ssh", "host_ed25519"), path("ssh", "authorized_keys"), path("pids", "sshd.pid"), path("primary", "kubeconfig"), filepath.Dir(kubectl))
	if err := os.WriteFile(path("ssh", "sshd_config"), []byte(config), 0o600); err != nil {
		return err
	}
	if _, ok := alive("sshd"); !ok {
		if err := run(sshd, "-f", path("ssh", "sshd_config"), "-E", path("logs", "sshd.log")); err != nil {
			return err
		}
		logf("started sshd on 127.0.0.1:%d", p.SSH)
	}
	return waitFor("sshd", 10*time.Second, func() error {
		if tcpOpen(fmt.Sprintf("127.0.0.1:%d", p.SSH)) {
			return nil
		}
		return errors.New("port closed")
	})
}

func writeEnv(p *ports, kubectl string) error {
	env := fmt.Sprintf(`# orch test environment: source this file.
export ORCH_TESTENV=%s
export KUBECONFIG=%s
export ORCH_KUBECTL=%s
export ORCH_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/
export ORCH_SSH_HOST=127.0.0.1
export ORCH_SSH_PORT=%d
export ORCH_SSH_USER=%s
export ORCH_SSH_KEY=%s
export ORCH_SSH_KNOWN_HOSTS=%s
export ORCH_ETCD_ENDPOINTS=http://127.0.0.1:%d
export ORCH_CHROMIUM=%s
export ORCH_NODE_PATH=%s
`, path("env"), path("kubeconfig"), kubectl, p.SSH, currentUser(), path("ssh", "id_ed25519"), path("ssh", "known_hosts"), p.OrchEtcdClient,
		chromiumPath, path("node", "node_modules"))
	tmp := path("env.tmp")
	if err := os.WriteFile(tmp, []byte(env), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path("env"))
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

var processes = []string{"peer-kwok", "primary-kwok", "peer-scheduler", "primary-scheduler",
	"peer-controller-manager", "primary-controller-manager", "peer-apiserver", "primary-apiserver", "etcd", "orch-etcd", "sshd"}

func down() error {
	_ = os.Remove(path("env"))
	for _, name := range processes {
		pid, ok := alive(name)
		if ok {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			gone := waitFor(name+" exit", 10*time.Second, func() error {
				if _, ok := alive(name); ok {
					return errors.New("still running")
				}
				return nil
			})
			if gone != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			logf("stopped %s (pid %d)", name, pid)
		}
		_ = os.Remove(path("pids", name+".pid"))
	}
	if _, err := os.Stat(path("rabbitmq-started-by-testenv")); err == nil {
		_ = run("rabbitmqctl", "stop")
		_ = os.Remove(path("rabbitmq-started-by-testenv"))
	}
	// Fresh data next time; keys, ports and logs stay.
	for _, d := range []string{"etcd-data", "primary", "peer"} {
		_ = os.RemoveAll(path(d))
	}
	if left := leftovers(); len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return fmt.Errorf("processes of the environment were still running and were killed: %v", left)
	}
	logf("environment down; no process left")
	return nil
}

// leftovers finds processes running one of the cached binaries, or an sshd
// with this environment's config: what down must not leave behind.
func leftovers() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ours(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func status() error {
	var down []string
	for _, name := range processes {
		if _, ok := alive(name); !ok {
			down = append(down, name)
		}
	}
	if _, err := os.Stat(path("env")); err != nil {
		down = append(down, "env file")
	}
	if !browserInstalled() {
		down = append(down, "chromium or playwright-core (not installed)")
	}
	if !collectorsInstalled() {
		// An environment brought up before the tests needed collectd
		// or Prometheus.
		down = append(down, "collectd or prometheus (not installed)")
	}
	if len(down) > 0 {
		return fmt.Errorf("not running: %s", strings.Join(down, ", "))
	}
	fmt.Println(path("env"))
	return nil
}
