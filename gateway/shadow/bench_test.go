package shadow_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/shadow"
)

// A device's typical report: a few scalars, one nested object, one array.
const benchReport = `{"state":{"reported":{"temp":21.5,"hum":40,"on":true,"fw":"1.4.2",` +
	`"light":{"r":255,"g":128,"b":0},"history":[1,2,3,4]}},"clientToken":"sensor-0017-42"}`

func benchUpdates(b *testing.B, svc *shadow.Service, topics []string) {
	b.Helper()
	ctx := context.Background()
	req := shadow.Request{Payload: []byte(benchReport), Time: time.Unix(1700000000, 0)}
	lat := make([]time.Duration, 0, 1<<16) // a sample: the first 65,536 updates
	b.ReportAllocs()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		req.Topic = topics[i%len(topics)]
		t0 := time.Now()
		out := svc.Handle(ctx, req)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
		if len(out) != 2 {
			b.Fatalf("update answered with %d messages; want accepted and documents", len(out))
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkUpdate: one device reporting to its classic shadow, MemStore.
func BenchmarkUpdate(b *testing.B) {
	benchUpdates(b, shadow.New(shadow.NewMemStore(), shadow.Options{}), []string{"$aws/things/sensor-0017/shadow/update"})
}

// BenchmarkUpdate2000Shadows: 2,000 devices reporting in turn.
func BenchmarkUpdate2000Shadows(b *testing.B) {
	topics := make([]string, 2000)
	for i := range topics {
		topics[i] = "$aws/things/sensor-" + strconv.Itoa(i) + "/shadow/update"
	}
	benchUpdates(b, shadow.New(shadow.NewMemStore(), shadow.Options{}), topics)
}

// BenchmarkUpdateSynced: the same report on a shadow synced up, so each update
// also writes an outbox entry (offline: nothing leaves).
func BenchmarkUpdateSynced(b *testing.B) {
	svc := shadow.New(shadow.NewMemStore(), shadow.Options{})
	if _, err := shadow.NewSyncer(context.Background(), svc, shadow.SyncOptions{
		Shadows: []shadow.SyncShadow{{Thing: "sensor-0017", Direction: shadow.Up}}}); err != nil {
		b.Fatal(err)
	}
	benchUpdates(b, svc, []string{"$aws/things/sensor-0017/shadow/update"})
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	svc := shadow.New(shadow.NewMemStore(), shadow.Options{})
	svc.Handle(ctx, shadow.Request{Topic: "$aws/things/sensor-0017/shadow/update", Payload: []byte(benchReport)})
	req := shadow.Request{Topic: "$aws/things/sensor-0017/shadow/get", Payload: []byte(`{"clientToken":"t"}`), Time: time.Unix(1700000000, 0)}
	b.ReportAllocs()
	for b.Loop() {
		if out := svc.Handle(ctx, req); len(out) != 1 {
			b.Fatalf("get answered with %d messages", len(out))
		}
	}
}
