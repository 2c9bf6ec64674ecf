package bridge

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// ackTrace wraps a queue and records, per seq, when the bridge acknowledged
// it to the queue and which upstream PUBACK (reason code, time) it had got
// for it, to tell a loss in the bridge from a loss downstream of the
// upstream's PUBACK. runBridge hooks it to the bridge's PUBACK trace.
type ackTrace struct {
	testQueue
	mu     sync.Mutex
	acked  map[uint64]time.Time
	puback map[uint64]pubackRec // last PUBACK matched to seq
}

type pubackRec struct {
	code byte
	at   time.Time
}

func newAckTrace(q testQueue) *ackTrace {
	return &ackTrace{testQueue: q, acked: map[uint64]time.Time{}, puback: map[uint64]pubackRec{}}
}

func (a *ackTrace) Ack(seq uint64) error {
	a.mu.Lock()
	a.acked[seq] = time.Now()
	a.mu.Unlock()
	return a.testQueue.Ack(seq)
}

// onPuback is the bridge's tracePuback hook.
func (a *ackTrace) onPuback(seq uint64, code byte) {
	a.mu.Lock()
	a.puback[seq] = pubackRec{code: code, at: time.Now()}
	a.mu.Unlock()
}

// lossClass names who lost a message the upstream subscriber never saw.
type lossClass string

const (
	lossNotAcked     lossClass = "never acknowledged to the queue (bridge/store did not deliver it: still queued or lost in the store)"
	lossAckNoPuback  lossClass = "acknowledged to the queue WITHOUT an upstream PUBACK (bridge bug: ack attributed to the wrong message)"
	lossNoSubscriber lossClass = "upstream PUBACK 0x10 no matching subscribers (the test subscriber had no session at the upstream then: harness, not the bridge)"
	lossUpstream     lossClass = "upstream PUBACK success, then lost by the upstream broker before the subscriber got it (mosquitto, not the bridge)"
	lossRefused      lossClass = "upstream PUBACK >= 0x80 (refused; should be dead-lettered)"
)

// classify sorts missing seqs by who lost them.
func (a *ackTrace) classify(missing []uint64) map[lossClass][]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[lossClass][]uint64{}
	for _, seq := range missing {
		_, acked := a.acked[seq]
		pa, hadPuback := a.puback[seq]
		var c lossClass
		switch {
		case !acked && !hadPuback:
			c = lossNotAcked
		case !hadPuback:
			c = lossAckNoPuback
		case pa.code == 0x10:
			c = lossNoSubscriber
		case pa.code >= 0x80:
			c = lossRefused
		default:
			c = lossUpstream
		}
		out[c] = append(out[c], seq)
	}
	return out
}

// explain renders classify's result with PUBACK and ack times of the first
// few seqs of each class.
func (a *ackTrace) explain(missing []uint64) string {
	cls := a.classify(missing)
	keys := make([]string, 0, len(cls))
	for c := range cls {
		keys = append(keys, string(c))
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		seqs := cls[lossClass(k)]
		fmt.Fprintf(&b, "\n  %d missing: %s", len(seqs), k)
		for _, seq := range seqs[:min(5, len(seqs))] {
			a.mu.Lock()
			pa, hadPuback := a.puback[seq]
			at, acked := a.acked[seq]
			a.mu.Unlock()
			fmt.Fprintf(&b, "\n    seq %d:", seq)
			if hadPuback {
				fmt.Fprintf(&b, " PUBACK 0x%02x at %s;", pa.code, pa.at.Format("15:04:05.000"))
			} else {
				b.WriteString(" no PUBACK;")
			}
			if acked {
				fmt.Fprintf(&b, " queue ack at %s", at.Format("15:04:05.000"))
			} else {
				b.WriteString(" no queue ack")
			}
		}
	}
	return b.String()
}
