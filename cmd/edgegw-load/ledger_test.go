package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// ev is one ledger event in a table test.
type ev struct {
	kind string // sent, ack, nack, deliver
	dev  string
	seq  uint64
}

func TestLedger(t *testing.T) {
	tests := []struct {
		name    string
		events  []ev
		dropped int64
		want    Report
		ok      bool
	}{
		{"empty", nil, 0, Report{}, true},
		{"acked and delivered", []ev{{"sent", "a", 1}, {"ack", "a", 1}, {"deliver", "a", 1}}, 0,
			Report{Sent: 1, Acked: 1, Delivered: 1}, true},
		{"duplicate delivery is not a loss", []ev{{"sent", "a", 1}, {"ack", "a", 1}, {"deliver", "a", 1}, {"deliver", "a", 1}, {"deliver", "a", 1}}, 0,
			Report{Sent: 1, Acked: 1, Delivered: 1, Duplicates: 2}, true},
		{"acked never delivered is unexplained", []ev{{"sent", "a", 1}, {"ack", "a", 1}}, 0,
			Report{Sent: 1, Acked: 1, Lost: 1, Unexplained: 1}, false},
		{"counted drop explains a loss", []ev{{"sent", "a", 1}, {"ack", "a", 1}, {"sent", "a", 2}, {"ack", "a", 2}, {"deliver", "a", 2}}, 1,
			Report{Sent: 2, Acked: 2, Delivered: 1, Lost: 1, Dropped: 1}, true},
		{"drops do not go negative", []ev{{"sent", "a", 1}, {"ack", "a", 1}, {"deliver", "a", 1}}, 5,
			Report{Sent: 1, Acked: 1, Delivered: 1, Dropped: 5}, true},
		{"more losses than drops", []ev{{"sent", "a", 1}, {"ack", "a", 1}, {"sent", "b", 1}, {"ack", "b", 1}, {"sent", "b", 2}, {"ack", "b", 2}}, 2,
			Report{Sent: 3, Acked: 3, Lost: 3, Dropped: 2, Unexplained: 1}, false},
		{"unconfirmed and undelivered promised nothing", []ev{{"sent", "a", 1}}, 0,
			Report{Sent: 1, Unconfirmed: 1}, true},
		{"unconfirmed but delivered is at least once", []ev{{"sent", "a", 1}, {"deliver", "a", 1}}, 0,
			Report{Sent: 1, Unconfirmed: 1, Delivered: 1, DeliveredUnconfirmed: 1}, true},
		{"refused and not delivered", []ev{{"sent", "a", 1}, {"nack", "a", 1}}, 0,
			Report{Sent: 1, Refused: 1}, true},
		{"refused but delivered breaks the promise", []ev{{"sent", "a", 1}, {"nack", "a", 1}, {"deliver", "a", 1}}, 0,
			Report{Sent: 1, Refused: 1, Delivered: 1, DeliveredRefused: 1}, false},
		{"delivery of a message never sent", []ev{{"deliver", "ghost", 7}}, 0,
			Report{Unknown: 1}, false},
		{"same seq of two devices are two messages", []ev{{"sent", "a", 1}, {"sent", "b", 1}, {"ack", "a", 1}, {"ack", "b", 1}, {"deliver", "b", 1}}, 0,
			Report{Sent: 2, Acked: 2, Delivered: 1, Lost: 1, Unexplained: 1}, false},
		{"resend of the same seq counts once", []ev{{"sent", "a", 1}, {"sent", "a", 1}, {"ack", "a", 1}, {"deliver", "a", 1}}, 0,
			Report{Sent: 1, Acked: 1, Delivered: 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger()
			now := time.Now().UnixNano()
			for _, e := range tc.events {
				switch e.kind {
				case "sent":
					l.Sent(e.dev, e.seq, now)
				case "ack":
					l.Acked(e.dev, e.seq, 0)
				case "nack":
					l.Acked(e.dev, e.seq, 0x87)
				case "deliver":
					l.Delivered(e.dev, e.seq, now+int64(time.Millisecond))
				}
			}
			got := l.Report(tc.dropped)
			got.Latency = Percentiles{}
			if got != tc.want {
				t.Errorf("Report(%d) =\n  %+v\nwant\n  %+v", tc.dropped, got, tc.want)
			}
			if got.OK() != tc.ok {
				t.Errorf("OK() = %v; want %v", got.OK(), tc.ok)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := percentiles(d)
	want := Percentiles{N: 100, P50: 50 * time.Millisecond, P95: 95 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("percentiles = %+v; want %+v", got, want)
	}
	if got := percentiles([]time.Duration{3}); got.P50 != 3 || got.P99 != 3 || got.Max != 3 {
		t.Errorf("one sample: %+v", got)
	}
	if got := percentiles(nil); got != (Percentiles{}) {
		t.Errorf("no samples: %+v", got)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct {
		dev  string
		seq  uint64
		size int
	}{
		{"temp-f01-001", 1, 0},
		{"probe:lock-f20-100", 18446744073709551615, 200},
		{"a", 0, 64},
	}
	for _, tc := range tests {
		p := encodePayload(tc.dev, tc.seq, 12345, tc.size)
		if len(p) < tc.size {
			t.Errorf("len = %d; want >= %d", len(p), tc.size)
		}
		dev, seq, ts, err := decodePayload(p)
		if err != nil || dev != tc.dev || seq != tc.seq || ts != 12345 {
			t.Errorf("decode(%q) = %q %d %d %v; want %q %d 12345", p, dev, seq, ts, err, tc.dev, tc.seq)
		}
	}
	for _, bad := range []string{"", "x", "a b c", "a 1", "a -1 2"} {
		if _, _, _, err := decodePayload([]byte(bad)); err == nil {
			t.Errorf("decode(%q): no error", bad)
		}
	}
}

func TestReportPrint(t *testing.T) {
	var b bytes.Buffer
	Report{Sent: 3, Acked: 2, Lost: 1, Dropped: 1, Latency: Percentiles{N: 1, P50: time.Millisecond}}.Print(&b, "ledger:")
	for _, want := range []string{"ledger:", "sent", "unexplained", "p50 1ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
