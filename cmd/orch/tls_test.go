package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator/api"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orch test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// The API beyond loopback: refused without TLS; over TLS the CLI reaches
// it through the endpoint file, or ORCH_API_URL with ORCH_API_CA, and not
// without the CA nor in clear text.
func TestAPIBeyondLoopbackNeedsTLS(t *testing.T) {
	e := testenv.Get(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "tls")
	amqp := []string{"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue}
	r := orch(t, state, append([]string{"serve", "--api-addr", "0.0.0.0:0"}, amqp...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "without TLS the API listens on a loopback address only") {
		t.Fatalf("serve on 0.0.0.0 without TLS: exit %d\n%s", r.code, r.stderr)
	}
	cert, key := selfSigned(t, dir)
	serve := startServe(t, state, append([]string{"--api-addr", "0.0.0.0:0", "--tls-cert", cert, "--tls-key", key}, amqp...)...)
	defer serve.stop(t)
	ep, err := api.ReadEndpoint(api.EndpointPath(state))
	if err != nil || !strings.HasPrefix(ep.URL, "https://127.0.0.1:") {
		t.Fatalf("endpoint %+v %v", ep, err)
	}
	if r := orch(t, state, "deployments", "list"); r.code != 0 {
		t.Errorf("the CLI through the endpoint file over TLS: exit %d\n%s", r.code, r.stderr)
	}
	remote := func(withCA bool) result {
		cmd := exec.Command(orchBin, "--state", filepath.Join(dir, "elsewhere.db"), "deployments", "list")
		cmd.Env = append(os.Environ(), "ORCH_API_URL="+ep.URL, "ORCH_API_TOKEN="+ep.Token)
		if withCA {
			cmd.Env = append(cmd.Env, "ORCH_API_CA="+cert)
		}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{stdout: string(out), code: code}
	}
	if r := remote(true); r.code != 0 {
		t.Errorf("ORCH_API_URL over TLS with the CA: exit %d\n%s", r.code, r.stdout)
	}
	if r := remote(false); r.code == 0 || !strings.Contains(r.stdout, "certificate") {
		t.Errorf("ORCH_API_URL over TLS without the CA: exit %d\n%s", r.code, r.stdout)
	}
	resp, err := http.Get(strings.Replace(ep.URL, "https://", "http://", 1) + "/v1/health")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("the API answered in clear text")
		}
	}
}
