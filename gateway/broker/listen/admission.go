package listen

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
)

// Fair admission of pending handshakes (Guard).
//
// A connection is pending from accept until its CONNECT is read; the
// listener holds at most max_pending_handshakes of them. One global budget
// let 256 bare TCP connections from one host (never starting TLS) refuse
// every sensor until they timed out, again and again. So the budget is
// shared per source address:
//
//   - an address that has not completed a TLS handshake (or, on plaintext,
//     been handed to the broker) on this listener since start is unproven
//     and holds at most max/16 pending connections (at least 2); a proven
//     address (on an mTLS listener: one that presented a valid client
//     certificate) is bound by the whole budget only, as before, so a site
//     whose sensors share one address (NAT, or every test harness on
//     127.0.0.1) reconnects as fast as it did;
//   - when the whole budget is taken, a connection from a proven address
//     closes the oldest pending connection of the unproven address holding
//     the most, instead of being refused: handshakes from addresses that
//     never complete one are refused first;
//   - every refusal (a share or the budget full) and every eviction is
//     counted (Counters.PendingRejected, AdmissionEvicted) and summarised in
//     the audit log at most once per admissionAuditEvery per listener: one
//     admission_refused line per source address with the count.
type Admission struct {
	mu           sync.Mutex
	max          int
	perProven    int
	perUnproven  int
	total        int
	src          map[netip.Addr]*admSource
	refused      map[netip.Addr]int64 // since the last audit summary
	flushPending bool

	metrics  *Counters
	listener string
	audit    func(audit.Event)
}

type admSource struct {
	proven  bool
	pending []*Conn // oldest first
}

// admissionAuditEvery bounds the audit summaries of refusals.
const admissionAuditEvery = 10 * time.Second

// maxAdmissionSources bounds the per-address records kept.
const maxAdmissionSources = 4096

func NewAdmission(maxPending int, m *Counters, listener string, rec func(audit.Event)) *Admission {
	maxPending = max(maxPending, 1)
	return &Admission{
		max: maxPending, perProven: maxPending, perUnproven: max(maxPending/16, 2),
		src: map[netip.Addr]*admSource{}, refused: map[netip.Addr]int64{},
		metrics: m, listener: listener, audit: rec,
	}
}

func sourceAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// admit takes a pending slot for gc (from addr) or refuses it (false).
func (a *Admission) admit(addr netip.Addr, gc *Conn) bool {
	var evict *Conn
	a.mu.Lock()
	s := a.src[addr]
	if s == nil {
		if len(a.src) >= maxAdmissionSources {
			a.forgetIdleLocked()
		}
		s = &admSource{}
		a.src[addr] = s
	}
	share := a.perUnproven
	if s.proven {
		share = a.perProven
	}
	ok := len(s.pending) < share
	if ok && a.total >= a.max {
		ok = false
		if s.proven {
			evict = a.victimLocked()
			ok = evict != nil
		}
	}
	if !ok {
		a.refuseLocked(addr)
		a.mu.Unlock()
		return false
	}
	if evict != nil {
		a.removeLocked(evict) // its slot is ours
		a.metrics.PendingHandshakes.Add(-1)
		a.metrics.AdmissionEvicted.Add(1)
		a.refuseLocked(evict.src)
	}
	s.pending = append(s.pending, gc)
	a.total++
	a.metrics.PendingHandshakes.Add(1)
	a.mu.Unlock()
	if evict != nil {
		_ = evict.Conn.Close() // the handshake goroutine sees the error and finishes
	}
	return true
}

// victimLocked is the oldest pending connection of the unproven address
// holding the most (nil: none).
func (a *Admission) victimLocked() *Conn {
	var worst *admSource
	for _, s := range a.src {
		if !s.proven && len(s.pending) > 0 && (worst == nil || len(s.pending) > len(worst.pending)) {
			worst = s
		}
	}
	if worst == nil {
		return nil
	}
	return worst.pending[0]
}

// release frees gc's slot (once, from Conn.Done).
func (a *Admission) release(gc *Conn) {
	a.mu.Lock()
	if a.removeLocked(gc) {
		a.metrics.PendingHandshakes.Add(-1)
	}
	a.mu.Unlock()
}

// removeLocked drops gc from its source's pending list; false if it was
// not there (already evicted).
func (a *Admission) removeLocked(gc *Conn) bool {
	s := a.src[gc.src]
	if s == nil {
		return false
	}
	for i, p := range s.pending {
		if p == gc {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			a.total--
			if len(s.pending) == 0 && !s.proven {
				delete(a.src, gc.src)
			}
			return true
		}
	}
	return false
}

// prove marks addr as having completed a handshake.
func (a *Admission) prove(addr netip.Addr) {
	a.mu.Lock()
	if s := a.src[addr]; s != nil {
		s.proven = true
	}
	a.mu.Unlock()
}

func (a *Admission) forgetIdleLocked() {
	for addr, s := range a.src {
		if len(s.pending) == 0 {
			delete(a.src, addr)
		}
	}
}

// refuseLocked counts a refusal and schedules the audit summary.
func (a *Admission) refuseLocked(addr netip.Addr) {
	a.metrics.PendingRejected.Add(1)
	a.refused[addr]++
	if !a.flushPending {
		a.flushPending = true
		time.AfterFunc(admissionAuditEvery, a.Flush)
	}
}

// Flush writes one audit line per address refused since the last one (a
// timer calls it; tests call it to see the summary now).
func (a *Admission) Flush() {
	a.mu.Lock()
	counts := a.refused
	a.refused = map[netip.Addr]int64{}
	a.flushPending = false
	a.mu.Unlock()
	addrs := make([]netip.Addr, 0, len(counts))
	for addr := range counts {
		addrs = append(addrs, addr)
	}
	sort.Slice(addrs, func(i, j int) bool { return counts[addrs[i]] > counts[addrs[j]] })
	for i, addr := range addrs {
		if i == 16 {
			rest := int64(0)
			for _, x := range addrs[i:] {
				rest += counts[x]
			}
			a.record("", rest, fmt.Sprintf("and %d more addresses", len(addrs)-i))
			break
		}
		a.record(addr.String(), counts[addr], "")
	}
}

func (a *Admission) record(remote string, n int64, more string) {
	if a.audit == nil {
		return
	}
	reason := fmt.Sprintf("%d connection(s) refused or closed before their handshake: this address's share of max_pending_handshakes (%d while it has completed no handshake) or the whole budget (%d) was taken", n, a.perUnproven, a.max)
	if more != "" {
		reason = strings.Replace(reason, "this address's", "these addresses'", 1) + " (" + more + ")"
	}
	a.audit(audit.Event{Event: audit.EventAdmissionRefused, Listener: a.listener, Remote: remote, Count: n, Reason: reason})
}
