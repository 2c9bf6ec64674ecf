package hw

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/tcp"
)

// TPM notes:
//   - One connection per TPM (device path or simulator address) per process, shared by every key
//     and serialised by a lock: swtpm serves one connection at a time and has no resource
//     manager, and even /dev/tpmrm0 has few transient slots.
//   - TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING are retried up to tpmRetries times.
//   - Transient handles (SRK, loaded blob keys, sealed objects) are flushed after every
//     operation. The SRK is the TCG standard ECC P-256 storage primary (tpm2.ECCSRKTemplate)
//     under the owner hierarchy, re-created on demand (it is deterministic) and never persisted.
//   - A connection that fails below the TPM protocol (swtpm restarted, socket closed) is dropped
//     and re-opened on the next operation.
//   - Every command has a deadline (TPMTimeout; key generation TPMCreateTimeout), and a signature
//     waits at most TPMTimeout for the TPM to be free: the TPM transports have none, and a hung TPM
//     (swtpm stopped with SIGSTOP accepts connections and never answers; a wedged device) would
//     otherwise hold a TLS handshake, the daemon or an `edgegw` command for ever. On expiry the
//     connection is closed (which ends the blocked read on a socket or a pollable device), the
//     error wraps ErrTimeout, and the next operation opens a new connection.

const (
	defaultTPMDevice = "/dev/tpmrm0"
	tpmRetries       = 10
	tpmOwner         = uint32(tpm2.TPMRHOwner)
)

// TPM deadlines. A TPM answers a signature, a read or a load in milliseconds (its spec allows
// 2 s for the long ones); generating a key takes longer, an RSA key on a slow TPM up to a minute
// (Linux allows 300 s). TPMTimeout is below the LAN listener's handshake deadline (10 s by
// default), so a handshake a hung TPM fails is audited with this package's error, not as a
// timeout. Variables for tests.
var (
	TPMTimeout       = 5 * time.Second // one command, and the wait for the TPM to be free to sign
	TPMCreateTimeout = 3 * time.Minute // TPM2_Create, TPM2_CreatePrimary, TPM2_CreateLoaded
)

type tpmConn struct {
	id   string
	open func() (transport.TPMCloser, error)
	sem  chan struct{} // 1-slot lock that honours ctx
	t    transport.TPMCloser
	refs int // guarded by connsMu
}

var (
	connsMu sync.Mutex
	conns   = map[string]*tpmConn{}
)

func acquireTPM(u *TPMURI) *tpmConn {
	id, open := "device:"+u.Device, func() (transport.TPMCloser, error) { return openDevice(u.Device) }
	if u.TCP != "" {
		cfg := tcp.Config{CommandAddress: u.TCP, PlatformAddress: u.Platform}
		id, open = "tcp:"+u.TCP, func() (transport.TPMCloser, error) {
			t, err := tcp.Open(cfg)
			if err != nil {
				return nil, fmt.Errorf("%w: TPM simulator at %s: %v", ErrNoDevice, cfg.CommandAddress, err)
			}
			return t, nil
		}
	}
	connsMu.Lock()
	defer connsMu.Unlock()
	c := conns[id]
	if c == nil {
		c = &tpmConn{id: id, open: open, sem: make(chan struct{}, 1)}
		conns[id] = c
	}
	c.refs++
	return c
}

func (c *tpmConn) release() error {
	connsMu.Lock()
	c.refs--
	last := c.refs == 0
	if last {
		delete(conns, c.id)
	}
	connsMu.Unlock()
	if !last {
		return nil
	}
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	if c.t != nil {
		err := c.t.Close()
		c.t = nil
		return err
	}
	return nil
}

func openDevice(path string) (transport.TPMCloser, error) {
	t, err := linuxtpm.Open(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%w: %s does not exist (no TPM, or the tpm_tis/tpm_crb driver or the Pi's TPM overlay is not loaded)", ErrNoDevice, path)
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Errorf("%w: %s: permission denied (add the service user to group tss)", ErrNoDevice, path)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDevice, path, err)
	}
	return t, nil
}

// do runs fn with exclusive use of the TPM.
func (c *tpmConn) do(ctx context.Context, fn func(t transport.TPM) error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: %s stayed busy with another operation: %s", ErrTimeout, c.where(), c.timeoutHelp())
		}
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	if c.t == nil {
		t, err := c.openBounded(ctx)
		if err != nil {
			return err
		}
		c.t = t
	}
	err := fn(retrying{&bounded{c: c, ctx: ctx}})
	var rc tpm2.TPMRC
	if err != nil && !errors.As(err, &rc) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrWrongTPM) {
		// Below the TPM protocol (or no answer in time): drop the connection, reopen next time.
		_ = c.t.Close()
		c.t = nil
	}
	return err
}

// openBounded is c.open within TPMTimeout and ctx: the TCP transport dials without a timeout,
// and a hung swtpm whose listen backlog is full leaves the dial waiting for the kernel's SYN
// retries (minutes). A connection that opens after the caller gave up is closed.
func (c *tpmConn) openBounded(ctx context.Context) (transport.TPMCloser, error) {
	type opened struct {
		t   transport.TPMCloser
		err error
	}
	ch, gave := make(chan opened), make(chan struct{})
	go func() {
		t, err := c.open()
		select {
		case ch <- opened{t, err}:
		case <-gave:
			if t != nil {
				_ = t.Close()
			}
		}
	}()
	timer := time.NewTimer(TPMTimeout)
	defer timer.Stop()
	select {
	case o := <-ch:
		return o.t, o.err
	case <-timer.C:
		close(gave)
		return nil, fmt.Errorf("%w: %s: no connection within %v: %s", ErrTimeout, c.where(), TPMTimeout, c.timeoutHelp())
	case <-ctx.Done():
		close(gave)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s: no connection in time: %s", ErrTimeout, c.where(), c.timeoutHelp())
		}
		return nil, ctx.Err()
	}
}

// where names the TPM of c for error messages.
func (c *tpmConn) where() string {
	if addr, ok := strings.CutPrefix(c.id, "tcp:"); ok {
		return "the TPM simulator (swtpm) at " + addr
	}
	return strings.TrimPrefix(c.id, "device:")
}

// timeoutHelp says what to do about a TPM that does not answer.
func (c *tpmConn) timeoutHelp() string {
	if strings.HasPrefix(c.id, "tcp:") {
		return "swtpm serves one connection at a time: if a running edgegw daemon holds it, stop that first; otherwise swtpm is hung or stopped: restart it (the next operation reconnects)"
	}
	return "it is hung: check it with `tpm2_getcap properties-fixed`, look for TPM errors in `journalctl -k`, and reboot if it stays silent (the next operation reopens it)"
}

// bounded is c's connection with a deadline on every command (TPMTimeout, TPMCreateTimeout)
// and on ctx, for one do. After a command got no answer, the connection is closed and every
// later command of that do fails with the same error (callers that ignore one command's error,
// such as a flush or a probe, do not then report a closed connection instead).
type bounded struct {
	c    *tpmConn
	ctx  context.Context
	dead error
}

func (b *bounded) Send(cmd []byte) ([]byte, error) {
	if b.dead != nil {
		return nil, b.dead
	}
	timeout, name := TPMTimeout, "a command"
	if len(cmd) >= 10 {
		cc := tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10]))
		name = commandName(cc)
		switch cc {
		case tpm2.TPMCCCreate, tpm2.TPMCCCreatePrimary, tpm2.TPMCCCreateLoaded:
			timeout = TPMCreateTimeout
		}
	}
	type answer struct {
		rsp []byte
		err error
	}
	t := b.c.t
	ch := make(chan answer, 1)
	go func() {
		rsp, err := t.Send(cmd)
		ch <- answer{rsp, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-ch:
		return a.rsp, a.err
	case <-timer.C:
		b.dead = fmt.Errorf("%w: %s did not answer %s within %v: %s", ErrTimeout, b.c.where(), name, timeout, b.c.timeoutHelp())
	case <-b.ctx.Done():
		b.dead = fmt.Errorf("%s: %s: %w", b.c.where(), name, context.Cause(b.ctx))
		if errors.Is(b.ctx.Err(), context.DeadlineExceeded) {
			b.dead = fmt.Errorf("%w: %s did not answer %s in time: %s", ErrTimeout, b.c.where(), name, b.c.timeoutHelp())
		}
	}
	_ = t.Close() // ends the blocked read; do drops the connection
	return nil, b.dead
}

// commandName is the name of the commands edgegw sends, for errors.
func commandName(cc tpm2.TPMCC) string {
	switch cc {
	case tpm2.TPMCCSign:
		return "TPM2_Sign"
	case tpm2.TPMCCReadPublic:
		return "TPM2_ReadPublic"
	case tpm2.TPMCCLoad:
		return "TPM2_Load"
	case tpm2.TPMCCCreate:
		return "TPM2_Create"
	case tpm2.TPMCCCreatePrimary:
		return "TPM2_CreatePrimary"
	case tpm2.TPMCCEvictControl:
		return "TPM2_EvictControl"
	case tpm2.TPMCCFlushContext:
		return "TPM2_FlushContext"
	case tpm2.TPMCCUnseal:
		return "TPM2_Unseal"
	case tpm2.TPMCCGetRandom:
		return "TPM2_GetRandom"
	}
	return fmt.Sprintf("TPM command 0x%x", uint32(cc))
}

// retrying resends a command the TPM asked to retry (RETRY, YIELDED, TESTING).
type retrying struct{ t transport.TPM }

func (r retrying) Send(cmd []byte) ([]byte, error) {
	for i := 0; ; i++ {
		rsp, err := r.t.Send(cmd)
		if err != nil || len(rsp) < 10 || i == tpmRetries {
			return rsp, err
		}
		switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])) {
		case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting:
			time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
		default:
			return rsp, nil
		}
	}
}

func flush(t transport.TPM, h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(t)
}

// createSRK makes the standard ECC P-256 storage primary; the caller flushes it.
func createSRK(t transport.TPM) (tpm2.NamedHandle, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t)
	if err != nil {
		return tpm2.NamedHandle{}, fmt.Errorf("creating the storage root key (owner hierarchy): %w", err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

// loadParent returns the parent named in a blob, and whether the caller must flush it.
func loadParent(t transport.TPM, parent uint32) (tpm2.NamedHandle, bool, error) {
	if parent == tpmOwner {
		h, err := createSRK(t)
		return h, true, err
	}
	if parent>>24 != 0x81 {
		return tpm2.NamedHandle{}, false, fmt.Errorf("%w: key blob parent 0x%08x (want the owner hierarchy or a persistent handle)", ErrUnsupported, parent)
	}
	rsp, err := tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(parent)}.Execute(t)
	if err != nil {
		return tpm2.NamedHandle{}, false, fmt.Errorf("reading parent 0x%08x: %w", parent, err)
	}
	return tpm2.NamedHandle{Handle: tpm2.TPMHandle(parent), Name: rsp.Name}, false, nil
}

// loadBlob loads a TSS2 object under its parent; the caller flushes the returned handle.
func loadBlob(t transport.TPM, k *tssKey) (tpm2.NamedHandle, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](k.Public)
	if err != nil {
		return tpm2.NamedHandle{}, fmt.Errorf("key blob public part: %w", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](k.Private)
	if err != nil {
		return tpm2.NamedHandle{}, fmt.Errorf("key blob private part: %w", err)
	}
	parent, flushParent, err := loadParent(t, k.Parent)
	if err != nil {
		return tpm2.NamedHandle{}, err
	}
	if flushParent {
		defer flush(t, parent.Handle)
	}
	rsp, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: parent.Handle, Name: parent.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    *priv,
		InPublic:     *pub,
	}.Execute(t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCSize) || errors.Is(err, tpm2.TPMRCValue) {
			return tpm2.NamedHandle{}, fmt.Errorf("%w (the TPM rejected the blob: %v)", ErrWrongTPM, err)
		}
		return tpm2.NamedHandle{}, fmt.Errorf("loading key blob: %w", err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

func signingTemplate(kt KeyType) tpm2.TPMTPublic {
	attrs := tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		SignEncrypt:         true,
	}
	if kt == RSA2048 {
		return tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
				KeyBits:   2048,
			}),
		}
	}
	return tpm2.TPMTPublic{
		Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   tpm2.TPMECCNistP256,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
	}
}

// signingPublic checks that pub is an unrestricted signing key and converts it.
func signingPublic(b tpm2.TPM2BPublic) (crypto.PublicKey, error) {
	p, err := b.Contents()
	if err != nil {
		return nil, fmt.Errorf("reading public area: %w", err)
	}
	if !p.ObjectAttributes.SignEncrypt || p.ObjectAttributes.Restricted || p.ObjectAttributes.Decrypt {
		return nil, fmt.Errorf("%w: not an unrestricted signing key", ErrUnsupported)
	}
	if p.Type != tpm2.TPMAlgECC && p.Type != tpm2.TPMAlgRSA {
		return nil, fmt.Errorf("%w: TPM key type %v", ErrUnsupported, p.Type)
	}
	pub, err := tpm2.Pub(*p)
	if err != nil {
		return nil, fmt.Errorf("reading public key: %w", err)
	}
	return pub, nil
}

type tpmKey struct {
	conn   *tpmConn
	handle tpm2.TPMHandle // persistent key, or 0 for a blob
	name   tpm2.TPM2BName // of the persistent key
	blob   *tssKey
	pub    crypto.PublicKey
	once   sync.Once
}

func (k *tpmKey) Public() crypto.PublicKey { return k.pub }

func (k *tpmKey) Close() error {
	var err error
	k.once.Do(func() { err = k.conn.release() })
	return err
}

func tpmHash(h crypto.Hash) (tpm2.TPMIAlgHash, error) {
	switch h {
	case crypto.SHA1:
		return tpm2.TPMAlgSHA1, nil
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, nil
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, nil
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, nil
	}
	return 0, fmt.Errorf("%w: hash %v", ErrUnsupported, h)
}

// Sign signs digest in the TPM. ECDSA signatures are ASN.1 (r, s); RSA uses PSS when opts is
// *rsa.PSSOptions (the TPM chooses the salt length) and PKCS#1 v1.5 otherwise.
func (k *tpmKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h, err := tpmHash(opts.HashFunc())
	if err != nil {
		return nil, err
	}
	if len(digest) != opts.HashFunc().Size() {
		return nil, fmt.Errorf("digest is %d bytes, want %d for %v", len(digest), opts.HashFunc().Size(), opts.HashFunc())
	}
	var scheme tpm2.TPMTSigScheme
	switch k.pub.(type) {
	case *ecdsa.PublicKey:
		scheme = tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: h})}
	case *rsa.PublicKey:
		alg := tpm2.TPMAlgRSASSA
		if _, pss := opts.(*rsa.PSSOptions); pss {
			alg = tpm2.TPMAlgRSAPSS
		}
		scheme = tpm2.TPMTSigScheme{Scheme: alg, Details: tpm2.NewTPMUSigScheme(alg, &tpm2.TPMSSchemeHash{HashAlg: h})}
	}
	var sig []byte
	// A handshake has no context: it waits for the TPM at most TPMTimeout (then each command
	// has its own deadline too).
	ctx, cancel := context.WithTimeout(context.Background(), TPMTimeout)
	defer cancel()
	err = k.conn.do(ctx, func(t transport.TPM) error {
		key := tpm2.NamedHandle{Handle: k.handle, Name: k.name}
		if k.blob != nil {
			var err error
			key, err = loadBlob(t, k.blob)
			if err != nil {
				return err
			}
			defer flush(t, key.Handle)
		}
		rsp, err := tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: key.Handle, Name: key.Name, Auth: tpm2.PasswordAuth(nil)},
			Digest:     tpm2.TPM2BDigest{Buffer: digest},
			InScheme:   scheme,
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck},
		}.Execute(t)
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				return err // it names the command
			}
			return fmt.Errorf("TPM2_Sign: %w", err)
		}
		switch scheme.Scheme {
		case tpm2.TPMAlgECDSA:
			s, err := rsp.Signature.Signature.ECDSA()
			if err != nil {
				return err
			}
			sig, err = asn1.Marshal(struct{ R, S *big.Int }{
				new(big.Int).SetBytes(s.SignatureR.Buffer), new(big.Int).SetBytes(s.SignatureS.Buffer),
			})
			return err
		case tpm2.TPMAlgRSAPSS:
			s, err := rsp.Signature.Signature.RSAPSS()
			if err != nil {
				return err
			}
			sig = s.Sig.Buffer
		default:
			s, err := rsp.Signature.Signature.RSASSA()
			if err != nil {
				return err
			}
			sig = s.Sig.Buffer
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("signing in TPM: %w", err)
	}
	return sig, nil
}

func openTPM(ctx context.Context, u *TPMURI) (Key, error) {
	var blob *tssKey
	if u.Blob != "" {
		data, err := os.ReadFile(u.Blob)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: key blob %s does not exist", ErrNotFound, u.Blob)
			}
			return nil, err
		}
		if blob, err = parseTSSKey(data); err != nil {
			return nil, fmt.Errorf("key blob %s: %w", u.Blob, err)
		}
		if !blob.Type.Equal(oidLoadableKey) {
			return nil, fmt.Errorf("%w: key blob %s is not a loadable key (OID %v)", ErrUnsupported, u.Blob, blob.Type)
		}
	}
	c := acquireTPM(u)
	k := &tpmKey{conn: c, handle: tpm2.TPMHandle(u.Handle), blob: blob}
	err := c.do(ctx, func(t transport.TPM) error {
		if blob != nil {
			// Load once now, so a blob from another TPM fails at start, not at first use.
			h, err := loadBlob(t, blob)
			if err != nil {
				return err
			}
			flush(t, h.Handle)
			pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](blob.Public)
			if err != nil {
				return err
			}
			k.pub, err = signingPublic(*pub)
			return err
		}
		rsp, err := tpm2.ReadPublic{ObjectHandle: k.handle}.Execute(t)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCHandle) {
				return fmt.Errorf("%w: no key at persistent handle 0x%08x (create it with `edgegw key create`)", ErrNotFound, u.Handle)
			}
			return fmt.Errorf("reading persistent handle 0x%08x: %w", u.Handle, err)
		}
		k.name = rsp.Name
		k.pub, err = signingPublic(rsp.OutPublic)
		return err
	})
	if err != nil {
		_ = c.release()
		return nil, err
	}
	return k, nil
}

func createTPM(ctx context.Context, u *TPMURI, kt KeyType) (Key, error) {
	if u.Blob != "" {
		if _, err := os.Lstat(u.Blob); err == nil {
			return nil, fmt.Errorf("%w: key blob %s", ErrExists, u.Blob)
		}
	}
	c := acquireTPM(u)
	defer c.release()
	err := c.do(ctx, func(t transport.TPM) error {
		if u.Blob == "" {
			if _, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(u.Handle)}).Execute(t); err == nil {
				return fmt.Errorf("%w: persistent handle 0x%08x is in use (tpm2_evictcontrol -C o -c 0x%08x frees it, destroying that key)", ErrExists, u.Handle, u.Handle)
			}
		}
		srk, err := createSRK(t)
		if err != nil {
			return err
		}
		defer flush(t, srk.Handle)
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk.Handle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(signingTemplate(kt)),
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("TPM2_Create: %w", err)
		}
		if u.Blob != "" {
			k := &tssKey{Type: oidLoadableKey, EmptyAuth: true, Parent: tpmOwner,
				Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate)}
			return writeFileExclusive(u.Blob, k.marshalPEM())
		}
		ld, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: srk.Handle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    rsp.OutPrivate,
			InPublic:     rsp.OutPublic,
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("TPM2_Load: %w", err)
		}
		defer flush(t, ld.ObjectHandle)
		_, err = tpm2.EvictControl{
			Auth:             tpm2.TPMRHOwner,
			ObjectHandle:     tpm2.NamedHandle{Handle: ld.ObjectHandle, Name: ld.Name},
			PersistentHandle: tpm2.TPMHandle(u.Handle),
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("persisting at 0x%08x (TPM2_EvictControl): %w", u.Handle, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return openTPM(ctx, u)
}
