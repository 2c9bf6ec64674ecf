package pki

import (
	"context"
	"fmt"
	"testing"
)

// The seed's building: 2,000 sensors enrolled at once, each with its own key and certificate,
// through the same code path as `edgegw pki issue --batch` (one lock, one commit), files written.
func issueBuilding(tb testing.TB, o Options, out string, n int) {
	reqs := make([]IssueRequest, n)
	for i := range reqs {
		reqs[i] = IssueRequest{Thing: fmt.Sprintf("temp-f%02d-%03d", i/100, i%100), Type: "temperature",
			Attributes: map[string]string{"floor": fmt.Sprintf("%02d", i/100), "building": "hq"}, Policies: []string{"temperature"}}
	}
	res, err := Issue(context.Background(), o, out, reqs...)
	if err != nil {
		tb.Fatal(err)
	}
	if len(res.Bundles) != n {
		tb.Fatalf("%d bundles; want %d", len(res.Bundles), n)
	}
}

// TestIssue2000 proves the 2,000-device batch completes and leaves consistent state. Its time
// is measured by BenchmarkIssue2000 (`make bench`), not asserted here.
func TestIssue2000(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200 // `go test -short`; the full size runs in the default suite and in `make bench`
	}
	o := newPKI(t)
	issueBuilding(t, o, t.TempDir(), n)
	checkConsistent(t, o, n)
	// And one more, singly, after the batch (the registry is parsed and rewritten once more).
	issueOne(t, o, "", IssueRequest{Thing: "late-1"})
	checkConsistent(t, o, n+1)
}

func BenchmarkIssue2000(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		o := newPKI(b)
		out := b.TempDir()
		b.StartTimer()
		issueBuilding(b, o, out, 2000)
	}
}

// BenchmarkIssueOneByOne is the cost of one `edgegw pki issue THING` (lock, open CA, key, sign,
// rewrite issued.json and devices.yaml, fsync) on a PKI that already holds 2,000 devices.
func BenchmarkIssueOneByOne(b *testing.B) {
	o := newPKI(b)
	issueBuilding(b, o, "", 2000)
	out := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		if _, err := Issue(context.Background(), o, out, IssueRequest{Thing: fmt.Sprintf("extra-%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
}
