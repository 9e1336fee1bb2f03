// Package tlsconf holds the server's certificate for its public listeners
// (--tls-cert, --tls-key) and replaces it while the server runs: on
// Reload (SIGHUP) and when Watch sees the files change. Connections
// already open keep the certificate they shook hands with; only new
// handshakes see a new one, so a rotation drops no one.
//
// A reload that fails (unreadable file, bad PEM, a key that does not match
// the certificate, a half-written pair) keeps the certificate in use and
// logs why: a mistake during rotation must not take the listeners down.
//
// Reloader's methods are safe for concurrent use. The package also builds
// the client side's configuration from a CA file (ClientConfig), for the
// terminal client and the load generator.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// MinVersion is the oldest protocol version the listeners accept.
const MinVersion = tls.VersionTLS12

// Reloader serves the current certificate of a certificate and key file
// pair to tls.Config.GetCertificate.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger

	cert atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serializes loads; guards stamp
	stamp stamp      // the files as last read, loaded or not
}

// stamp is what Watch compares to notice a change: modification time and
// size of both files (no inotify: no dependency, works on every
// filesystem, and a poll of two stat calls costs nothing).
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func (s stamp) same(o stamp) bool {
	return s.certMod.Equal(o.certMod) && s.keyMod.Equal(o.keyMod) && s.certSize == o.certSize && s.keySize == o.keySize
}

func statFiles(certFile, keyFile string) (stamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return stamp{}, err
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return stamp{}, err
	}
	return stamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// New loads the pair once; unlike a reload, a failure here is returned, so
// a server does not start without a usable certificate.
func New(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: a certificate file and a key file are both needed")
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads both files and swaps the certificate in if they make a pair.
// The stamp is recorded even when the pair is bad, so Watch reports a bad
// pair once rather than at every poll.
func (r *Reloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, statErr := statFiles(r.certFile, r.keyFile)
	if statErr == nil {
		r.stamp = st
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: loading %s and %s: %w", r.certFile, r.keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tls: parsing %s: %w", r.certFile, err)
		}
		cert.Leaf = leaf
	}
	r.cert.Store(&cert)
	lvl := slog.LevelInfo
	if time.Now().After(leaf.NotAfter) {
		lvl = slog.LevelWarn // served anyway: the operator may be fixing the clock
	}
	r.log.Log(context.Background(), lvl, "tls certificate loaded", "cert", r.certFile,
		"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// Reload reads the files again. On failure the certificate in use stays
// and the error is logged (and returned, for a caller that reports it).
func (r *Reloader) Reload() error {
	err := r.load()
	if err != nil {
		r.log.Error("tls reload failed; keeping the certificate in use", "err", err)
	}
	return err
}

// Certificate is the certificate new handshakes get.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Config is a server configuration that takes its certificate from r.
// nextProtos is the ALPN list (nil: none).
func (r *Reloader) Config(nextProtos ...string) *tls.Config {
	return &tls.Config{MinVersion: MinVersion, GetCertificate: r.GetCertificate, NextProtos: nextProtos}
}

// Watch reloads whenever either file's modification time or size changes,
// checking every interval, until ctx ends. A file that cannot be read
// (being replaced) is looked at again on the next tick.
func (r *Reloader) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := statFiles(r.certFile, r.keyFile)
		if err != nil {
			continue
		}
		r.mu.Lock()
		changed := !st.same(r.stamp)
		r.mu.Unlock()
		if changed {
			r.log.Info("tls files changed; reloading", "cert", r.certFile, "key", r.keyFile)
			_ = r.Reload() // logged there
		}
	}
}

// ClientConfig is a client configuration that trusts the system roots and,
// if caFile is not empty, the PEM certificates in it (a private CA).
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots here: the CA alone
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA file %s: no PEM certificate in it", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
