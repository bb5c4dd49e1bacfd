package connector

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/internal/freeport"
)

// privateCA writes MinIO's public.crt and private.key for localhost and
// 127.0.0.1 into dir, signed by a new CA, and returns the CA in PEM.
func privateCA(t *testing.T, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flinkjob-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
}

// A bucket behind a certificate that a private CA signed: a client that
// does not trust the CA is refused (the TLS is real), one given the CA in
// S3Config.CAPEM (spec.storage.s3.tls.caSecretRef on a cluster) writes and
// reads, and a CAPEM holding no certificate is a clear error. MinIO runs
// with TLS on a port of its own.
func TestS3PrivateCA(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("..", "..", "hack", "minio.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, "install").CombinedOutput(); err != nil {
		t.Fatalf("hack/minio.sh install: %v\n%s", err, out)
	}
	dir := t.TempDir()
	ca := privateCA(t, filepath.Join(dir, "certs"))
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	console, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	server := exec.Command(filepath.Join(filepath.Dir(filepath.Dir(script)), "bin", "minio"), "server", "--quiet",
		"--certs-dir", filepath.Join(dir, "certs"), "--address", addr, "--console-address", "127.0.0.1:"+strconv.Itoa(console),
		filepath.Join(dir, "data"))
	server.Env = append(os.Environ(), "MINIO_ROOT_USER=tlsadmin", "MINIO_ROOT_PASSWORD=tlsadmin-secret", "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	server.Stdout, server.Stderr = io.Discard, io.Discard
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })

	trusted := S3Config{Endpoint: "localhost:" + strconv.Itoa(port), Secure: true, AccessKey: "tlsadmin", SecretKey: "tlsadmin-secret", CAPEM: ca}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		err := EnsureBucket(ctx, trusted, "tls")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("MinIO with TLS never answered a client trusting its CA: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	loc, err := ParseLocation("s3://tls/dir/", trusted)
	if err != nil {
		t.Fatal(err)
	}
	w, err := loc.Create(ctx, "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "over TLS")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := loc.Open(ctx, "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "over TLS" {
		t.Errorf("read %q back, want %q", b, "over TLS")
	}

	untrusted := trusted
	untrusted.CAPEM = ""
	if err := EnsureBucket(ctx, untrusted, "tls"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA: %v, want a certificate error", err)
	}
	bad := trusted
	bad.CAPEM = "not a certificate"
	if _, err := NewS3Client(bad); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CAPEM without a certificate: %v, want an error saying so", err)
	}
}
