package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker/listen"
)

// LoadPolicy reads the registry file and every .json/.yaml/.yml document in
// the policy directory (sorted by name) and compiles them as a running
// gateway does (authz.LoadEach): a policy file that does not load is
// returned as a *authz.FileError, and what attaches it is denied with
// authz.ErrPolicyBroken while every other thing keeps working. err is
// non-nil only when nothing can be built (unreadable files, a broken
// registry).
func LoadPolicy(registry, policyDir string) (*authz.Engine, []*authz.FileError, error) {
	reg, docs, err := readPolicy(registry, policyDir)
	if err != nil {
		return nil, nil, err
	}
	eng, broken, err := authz.LoadEach(reg, docs)
	if err != nil {
		return nil, nil, fmt.Errorf("loading policies: %w", err)
	}
	return eng, broken, nil
}

// CheckPolicy is LoadPolicy for `edgegw check`: strict (authz.Load), so any
// bad file is an error naming the file and line.
func CheckPolicy(registry, policyDir string) (*authz.Engine, error) {
	reg, docs, err := readPolicy(registry, policyDir)
	if err != nil {
		return nil, err
	}
	eng, err := authz.Load(reg, docs)
	if err != nil {
		return nil, fmt.Errorf("loading policies: %w", err)
	}
	return eng, nil
}

func readPolicy(registry, policyDir string) (authz.Source, []authz.Source, error) {
	reg, err := os.ReadFile(registry)
	if err != nil {
		return authz.Source{}, nil, fmt.Errorf("reading registry: %w", err)
	}
	files, err := policyFiles(policyDir)
	if err != nil {
		return authz.Source{}, nil, err
	}
	var docs []authz.Source
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return authz.Source{}, nil, fmt.Errorf("reading policy: %w", err)
		}
		docs = append(docs, authz.Source{Name: f, Data: data})
	}
	return authz.Source{Name: registry, Data: reg}, docs, nil
}

// loadPolicy is LoadPolicy with every broken policy file logged at Error and
// audited (policy_broken), loudly: the things it takes down are denied.
//
// At start (running nil) that is the whole story: one bad file does not keep
// the gateway from serving everyone else. On a reload (running set) a policy
// that breaks now but works in the running set refuses the reload instead:
// the running policies stay, so a typo never cuts devices that work; policies
// that were already broken stay broken and do not block the reload (fixing
// or editing other files still applies).
func (b *Broker) loadPolicy(registry, policyDir string, running *authz.Engine) (*authz.Engine, error) {
	eng, broken, err := LoadPolicy(registry, policyDir)
	if err != nil {
		return nil, err
	}
	if running != nil {
		was := map[string]bool{}
		for _, fe := range running.Broken() {
			was[fe.Policy] = true
		}
		var now []error
		for _, fe := range broken {
			if !was[fe.Policy] {
				now = append(now, fe)
			}
		}
		if len(now) > 0 {
			return nil, fmt.Errorf("keeping the running policies: %w", errors.Join(now...))
		}
	}
	for _, fe := range broken {
		b.metrics.PolicyBroken.Add(1)
		b.log.Error("policy did not load; what attaches it is denied until it is fixed",
			"policy", fe.Policy, "file", fe.File, "denied", strings.Join(fe.Denied, ", "), "err", fe.Err.Error())
		b.audit.Record(audit.Event{Event: audit.EventPolicyBroken, Resource: fe.File, Reason: fe.Error()})
	}
	return eng, nil
}

func policyFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading policy directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".json", ".yaml", ".yml":
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Reload re-reads server certificates (renewed for the same key), trust
// bundles, CRLs, password files, the registry and the policies. Everything
// is built first; only if all of it is valid is it swapped in (each piece
// atomically), after which connected clients are re-evaluated: those whose
// certificate is revoked or no longer trusted, whose thing is disabled or
// unknown, or whose iot:Connect is no longer allowed are disconnected;
// subscriptions no longer allowed are removed.
// On error the running state is kept, the failure is logged, audited and
// counted, and the error is returned. why is recorded in the audit line.
func (b *Broker) Reload(why string) error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	err := b.reloadLocked()
	if err != nil {
		b.metrics.ReloadFailures.Add(1)
		b.log.Error("reload failed, keeping the running configuration", "err", err, "trigger", why)
		b.audit.Record(audit.Event{Event: audit.EventReloadFailed, Reason: why + ": " + err.Error()})
		return err
	}
	b.metrics.Reloads.Add(1)
	b.log.Info("reloaded trust, registry and policies", "trigger", why)
	b.audit.Record(audit.Event{Event: audit.EventReload, Reason: why})
	b.reevaluate()
	return nil
}

func (b *Broker) reloadLocked() error {
	eng, err := b.loadPolicy(b.opts.Registry, b.opts.Policies, b.policy.Load())
	if err != nil {
		return err
	}
	trusts := make([]*listen.TrustState, len(b.ls))
	pws := make([]*listen.Passwords, len(b.ls))
	for i, bl := range b.ls {
		if bl.trust != nil {
			st, err := bl.trust.Prepare()
			if err != nil {
				return fmt.Errorf("listener %q: %w", bl.opts.Name, err)
			}
			trusts[i] = st
		}
		if bl.opts.PasswordFile != "" {
			pw, err := listen.LoadPasswords(bl.opts.PasswordFile)
			if err != nil {
				return fmt.Errorf("listener %q: %w", bl.opts.Name, err)
			}
			pws[i] = &pw
		}
	}
	for i, bl := range b.ls {
		if trusts[i] != nil {
			bl.trust.Commit(trusts[i])
		}
		if pws[i] != nil {
			bl.passwords.Store(pws[i])
		}
	}
	b.policy.Store(eng)
	return nil
}

// reevaluate applies the current trust and policy to every connected client.
func (b *Broker) reevaluate() {
	eng := b.policy.Load()
	b.clients.Range(func(_, v any) bool {
		st := v.(*clientState)
		if st.cl.Closed() {
			return true
		}
		if st.id.Chain != nil && st.ls.trust != nil {
			if err := st.ls.trust.Verify(st.id.Chain); err != nil {
				if errors.Is(err, listen.ErrRevoked) {
					b.metrics.RevocationDisconnects.Add(1)
					b.disconnect(st, audit.EventRevoked, "certificate revoked")
				} else {
					b.metrics.PolicyDisconnects.Add(1)
					b.disconnect(st, audit.EventPolicyDisconnect, err.Error())
				}
				return true
			}
		}
		if st.az != nil {
			return true // its policies are the custom authorizer's (authorizer.go)
		}
		sess, err := eng.Bind(st.authzIdentity())
		if err != nil {
			b.metrics.PolicyDisconnects.Add(1)
			b.disconnect(st, audit.EventPolicyDisconnect, err.Error())
			return true
		}
		if !sess.Allowed(authz.Connect, st.clientID) {
			b.metrics.PolicyDisconnects.Add(1)
			b.disconnect(st, audit.EventPolicyDisconnect, "iot:Connect client/"+st.clientID+" no longer allowed: "+explain(sess, authz.Connect, st.clientID))
			return true
		}
		st.sess.Store(sess)
		b.recheckSubscriptions(st, sess)
		return true
	})
}

func (b *Broker) disconnect(st *clientState, event, reason string) {
	b.audit.Record(audit.Event{Event: event, Device: st.id.ThingName, ClientID: st.clientID, Serial: st.id.Serial,
		Remote: st.cl.Net.Remote, Listener: st.cl.Net.Listener, Reason: reason})
	_ = b.srv.DisconnectClient(st.cl, packets.ErrNotAuthorized)
}

// recheckSubscriptions removes the client's subscriptions that sess no longer
// allows. MQTT has no server-initiated unsubscribe, so the client is not told;
// iot:Receive would block the deliveries anyway, this frees the state.
func (b *Broker) recheckSubscriptions(st *clientState, sess *authz.Session) {
	if sess == nil {
		return
	}
	for filter := range st.cl.State.Subscriptions.GetAll() {
		if b.subscribeProblem(sess, filter) == "" {
			continue
		}
		if b.srv.Topics.Unsubscribe(filter, st.cl.ID) {
			atomic.AddInt64(&b.srv.Info.Subscriptions, -1)
		}
		st.cl.State.Subscriptions.Delete(filter)
		b.metrics.SubscriptionsDropped.Add(1)
		b.audit.Record(audit.Event{Event: audit.EventSubscriptionDropped, Device: st.id.ThingName, ClientID: st.clientID,
			Action: authz.Subscribe.String(), Resource: resourceName(authz.Subscribe, filter), Reason: "no longer allowed"})
	}
}

// fileStamp identifies a file version cheaply (poll based watching).
type fileStamp struct {
	mtime int64
	size  int64
	ino   uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{mtime: -1}
	}
	s := fileStamp{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = sys.Ino
	}
	return s
}

// watchedStamps stamps every file whose change triggers a reload.
func (b *Broker) watchedStamps() map[string]fileStamp {
	ls := make([]ListenerOptions, 0, len(b.ls))
	for _, bl := range b.ls {
		ls = append(ls, bl.opts)
	}
	return stampFiles(b.opts.Registry, b.opts.Policies, ls)
}

// stampFiles stamps the registry, the policy directory and its files, and
// each listener's certificate, CA, CRL and password file.
func stampFiles(registry, policies string, listeners []ListenerOptions) map[string]fileStamp {
	m := map[string]fileStamp{}
	add := func(p string) {
		if p != "" {
			m[p] = stampOf(p)
		}
	}
	add(registry)
	add(policies)
	if files, err := policyFiles(policies); err == nil {
		for _, f := range files {
			add(f)
		}
	}
	for _, lo := range listeners {
		if t := lo.TLS; t != nil {
			add(t.Cert)
			add(t.CA)
			add(t.CRL)
		}
		add(lo.PasswordFile)
	}
	return m
}

func stampsEqual(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// watchSafetyPoll: with inotify, the files are still looked at this often,
// for changes inotify cannot see (a network filesystem changed by another
// host).
const watchSafetyPoll = time.Minute

// startWatch reloads when a watched file changes, so a revoked device is cut
// within a second of `edgegw pki revoke` rewriting the CRL. The directories
// of the files are watched by inotify (filewatch.go): an idle gateway does
// not wake for them, but once a minute (watchSafetyPoll). An event, or that
// minute, starts a look at the files' stamps every Watch interval (250 ms
// default) until they are what was loaded, or until a change has been
// stable for one interval (so a half-written file is not read): then it
// reloads. Without inotify (or a directory it cannot watch), the stamps
// are polled every Watch interval, as before. Stamps (not inotify's
// names) decide, so an editor that replaces a file by rename is seen too.
func (b *Broker) startWatch() {
	every := b.opts.Watch
	if every == 0 {
		every = 250 * time.Millisecond
	}
	// The stamps taken before New read the files, not now: a file changed
	// between the two (a CRL rewritten while the queue opened) is a change.
	last := b.loadedStamps
	if last == nil {
		last = b.watchedStamps()
	}
	w, err := newDirWatch()
	if err == nil {
		if err = w.watchFor(b.watchedFiles()); err != nil {
			w.close()
		}
	}
	var changed <-chan struct{}
	if err != nil {
		w = nil
		b.log.Warn("cannot watch the reloadable files by inotify; polling them instead", "every", every, "err", err)
	} else {
		changed = w.changed
	}
	b.watchWG.Add(1)
	go func() {
		defer b.watchWG.Done()
		if w != nil {
			defer w.close()
		}
		t := time.NewTimer(0) // at once: what changed since New read the files
		defer t.Stop()
		looking := true // t runs at every: a look is due
		var pending map[string]fileStamp
		for {
			select {
			case <-b.watchStop:
				return
			case <-changed:
				if !looking {
					looking = true
					t.Reset(0)
				}
				continue
			case <-t.C:
			}
			b.watchChecks.Add(1)
			cur := b.watchedStamps()
			switch {
			case stampsEqual(cur, last):
				pending = nil
			case pending != nil && stampsEqual(cur, pending):
				last, pending = cur, nil
				_ = b.Reload("file change")
			default:
				pending = cur
			}
			if w != nil {
				// Files may have come or gone (policies, symlink targets), a
				// directory may have been replaced.
				if err := w.watchFor(b.watchedFiles()); err != nil {
					b.log.Warn("cannot watch the reloadable files by inotify any more; polling them instead", "every", every, "err", err)
					w.close()
					w, changed = nil, nil
				}
			}
			switch {
			case w == nil || pending != nil:
				t.Reset(every)
			default:
				looking = false
				t.Reset(watchSafetyPoll)
			}
		}
	}()
}

// watchedFiles are the files whose change triggers a reload (their
// directories are watched) and the directories watched whole (the policy
// directory: a new policy file is a change).
func (b *Broker) watchedFiles() (files, whole []string) {
	for p := range b.watchedStamps() {
		files = append(files, p)
	}
	return files, []string{b.opts.Policies}
}
