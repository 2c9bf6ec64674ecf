package main

// The ledger counts every message end to end by (device, sequence).
//
// A message is "sent" when its PUBLISH is written, "acked" when a PUBACK with
// a success code came back, "refused" when the PUBACK carried a reason code
// >= 0x80 (MQTT 5: not authorized, quota exceeded), "unconfirmed" when the
// session ended before any PUBACK (the gateway promised nothing; it may still
// deliver it), and "delivered" when a subscriber (local or upstream) received
// it; every extra reception is a duplicate. An acked message that was never
// delivered is lost, unless the gateway's drop counters explain it: the
// configured overflow policy (drop-oldest) and counted drops may remove acked
// messages, so unexplained = max(0, lost - counted drops).

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

type msgKey struct {
	dev string
	seq uint64
}

type msgState struct {
	sent      int64 // unix nanos of the first send
	acked     bool
	refused   bool
	delivered int32
}

// Ledger is safe for concurrent use.
type Ledger struct {
	mu   sync.Mutex
	msgs map[msgKey]*msgState
	lat  []time.Duration // first delivery - send
	// unknown counts deliveries whose (device, seq) was never sent: a
	// foreign or corrupted message.
	unknown int64
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{msgs: map[msgKey]*msgState{}} }

// Sent records a publish attempt (at unix nanos t).
func (l *Ledger) Sent(dev string, seq uint64, t int64) {
	l.mu.Lock()
	if _, ok := l.msgs[msgKey{dev, seq}]; !ok {
		l.msgs[msgKey{dev, seq}] = &msgState{sent: t}
	}
	l.mu.Unlock()
}

// Acked records the PUBACK's outcome: code < 0x80 is success.
func (l *Ledger) Acked(dev string, seq uint64, code byte) {
	l.mu.Lock()
	if m := l.msgs[msgKey{dev, seq}]; m != nil {
		if code < 0x80 {
			m.acked = true
		} else {
			m.refused = true
		}
	}
	l.mu.Unlock()
}

// Forget removes a message the receiving broker said it delivered to
// nobody (MQTT 5 PUBACK 0x10 before the bridge subscribed): no promise.
func (l *Ledger) Forget(dev string, seq uint64) {
	l.mu.Lock()
	delete(l.msgs, msgKey{dev, seq})
	l.mu.Unlock()
}

// Delivered records one reception at unix nanos t.
func (l *Ledger) Delivered(dev string, seq uint64, t int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.msgs[msgKey{dev, seq}]
	if m == nil {
		l.unknown++
		return
	}
	m.delivered++
	if m.delivered == 1 {
		l.lat = append(l.lat, time.Duration(t-m.sent))
	}
}

// Report is the ledger's result.
type Report struct {
	Sent        int64 `json:"sent"`
	Acked       int64 `json:"acked"`
	Refused     int64 `json:"refused"`     // PUBACK >= 0x80
	Unconfirmed int64 `json:"unconfirmed"` // no PUBACK (session ended)
	Delivered   int64 `json:"delivered"`   // distinct messages delivered at least once
	Duplicates  int64 `json:"duplicates"`  // extra receptions
	// DeliveredUnconfirmed were delivered without a PUBACK (allowed: at least once).
	DeliveredUnconfirmed int64 `json:"delivered_unconfirmed"`
	// DeliveredRefused were delivered although the PUBACK refused them: a broken promise.
	DeliveredRefused int64       `json:"delivered_refused"`
	Lost             int64       `json:"lost"`        // acked, never delivered
	Dropped          int64       `json:"dropped"`     // the gateway's counted drops
	Unexplained      int64       `json:"unexplained"` // lost - dropped (>= 0)
	Unknown          int64       `json:"unknown"`     // deliveries of messages never sent
	Latency          Percentiles `json:"latency"`
}

// Percentiles of first-delivery latency.
type Percentiles struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Report computes the totals; dropped is the gateway's count of drops of
// acked messages by its configured policy.
func (l *Ledger) Report(dropped int64) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Unknown: l.unknown, Dropped: dropped}
	for _, m := range l.msgs {
		r.Sent++
		switch {
		case m.acked:
			r.Acked++
		case m.refused:
			r.Refused++
		default:
			r.Unconfirmed++
		}
		if m.delivered > 0 {
			r.Delivered++
			r.Duplicates += int64(m.delivered - 1)
			switch {
			case m.refused:
				r.DeliveredRefused++
			case !m.acked:
				r.DeliveredUnconfirmed++
			}
		} else if m.acked {
			r.Lost++
		}
	}
	r.Unexplained = max(0, r.Lost-dropped)
	r.Latency = percentiles(l.lat)
	return r
}

// LostKeys lists up to n acked-but-undelivered messages (for the report).
func (l *Ledger) LostKeys(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, m := range l.msgs {
		if m.acked && m.delivered == 0 {
			out = append(out, fmt.Sprintf("%s#%d", k.dev, k.seq))
		}
	}
	slices.Sort(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// OK reports whether the ledger proves the durability contract: nothing
// acked was lost beyond the counted drops, nothing refused was delivered and
// nothing foreign arrived.
func (r Report) OK() bool {
	return r.Unexplained == 0 && r.DeliveredRefused == 0 && r.Unknown == 0
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Percentiles{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: s[len(s)-1]}
}

// Print writes the ledger as a table.
func (r Report) Print(w io.Writer, title string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s\n", title)
	row := func(k string, v any, note string) { fmt.Fprintf(tw, "  %s\t%v\t  %s\n", k, v, note) }
	row("sent", r.Sent, "PUBLISH written")
	row("acknowledged", r.Acked, "PUBACK success")
	row("refused", r.Refused, "PUBACK >= 0x80 (not authorized, quota exceeded)")
	row("unconfirmed", r.Unconfirmed, "no PUBACK: session ended first (no promise made)")
	row("delivered", r.Delivered, "distinct messages received by the subscriber")
	row("duplicates", r.Duplicates, "extra receptions (at least once)")
	row("delivered unconfirmed", r.DeliveredUnconfirmed, "delivered without a PUBACK (allowed)")
	row("delivered refused", r.DeliveredRefused, "delivered although refused (must be 0)")
	row("lost", r.Lost, "acknowledged, never delivered")
	row("counted drops", r.Dropped, "the gateway's drop counters (configured overflow)")
	row("unexplained", r.Unexplained, "lost beyond counted drops (must be 0)")
	row("unknown", r.Unknown, "received but never sent (must be 0)")
	_ = tw.Flush()
	if r.Latency.N > 0 {
		fmt.Fprintf(w, "  latency (publish -> delivery, n=%d): p50 %s  p95 %s  p99 %s  max %s\n", r.Latency.N,
			round(r.Latency.P50), round(r.Latency.P95), round(r.Latency.P99), round(r.Latency.Max))
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// Payloads carry their identity: "<device> <seq> <unix nanos>" then padding.
// The device name never contains a space (thing names are [a-zA-Z0-9:_-]+).

func encodePayload(dev string, seq uint64, t int64, size int) []byte {
	b := make([]byte, 0, max(size, len(dev)+42))
	b = append(b, dev...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, t, 10)
	for len(b) < size {
		b = append(b, '.')
	}
	return b
}

var errPayload = errors.New("payload is not <device> <seq> <nanos>")

func decodePayload(p []byte) (dev string, seq uint64, t int64, err error) {
	f := strings.SplitN(strings.TrimRight(string(p), "."), " ", 3)
	if len(f) != 3 {
		return "", 0, 0, errPayload
	}
	seq, err = strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return "", 0, 0, errPayload
	}
	t, err = strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return "", 0, 0, errPayload
	}
	return f[0], seq, t, nil
}
