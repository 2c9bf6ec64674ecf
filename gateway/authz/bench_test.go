package authz

import (
	"fmt"
	"testing"
)

// BenchmarkAuthorize measures one decision on the hot path over the 2,000-device
// building: sessions are bound once (connect time), then every iteration checks one
// device's request, cycling through all devices. Target: < 1 µs and 0 allocs/op.
//
//	go test -run '^$' -bench Authorize -benchmem ./gateway/authz/
func BenchmarkAuthorize(b *testing.B) {
	e := loadBuilding(b)
	type req struct {
		s            *Session
		own, other   string
		filter, recv string
	}
	var reqs []req
	for f := 1; f <= floors; f++ {
		for id := 1; id <= devicesOnFloor; id++ {
			name, _ := deviceName(f, id)
			reqs = append(reqs, req{
				s:      bind(b, e, name, name),
				own:    ownTopic(f, id),
				other:  ownTopic(f, id%devicesOnFloor+1),
				filter: fmt.Sprintf("building/hq/floor/%02d/#", f),
				recv:   fmt.Sprintf("building/hq/floor/%02d/lock/%s/cmd", f, name),
			})
		}
	}
	run := func(name string, want func(r *req) bool, do func(r *req) bool) {
		b.Run(name, func(b *testing.B) {
			for i := range reqs {
				if got := do(&reqs[i]); got != want(&reqs[i]) {
					b.Fatalf("%s: device %d: got %v", name, i, got)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				do(&reqs[i])
				if i++; i == len(reqs) {
					i = 0
				}
			}
		})
	}
	yes := func(*req) bool { return true }
	no := func(*req) bool { return false }
	run("publish-allow", yes, func(r *req) bool { return r.s.Allowed(Publish, r.own) })
	run("publish-deny-neighbour", no, func(r *req) bool { return r.s.Allowed(Publish, r.other) })
	run("subscribe-deny-floor", no, func(r *req) bool { return r.s.Allowed(Subscribe, r.filter) })
	run("receive-mixed", func(r *req) bool { return r.s.thing.Type == "lock" }, func(r *req) bool { return r.s.Allowed(Receive, r.recv) })
}

// BenchmarkBind is the per-connection cost: thing lookup, variable substitution,
// condition evaluation.
func BenchmarkBind(b *testing.B) {
	e := loadBuilding(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Bind(Identity{ThingName: "lock-f03-100", ClientID: "lock-f03-100"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad is the reload cost of the whole building (2,000 things, 5 policies).
func BenchmarkLoad(b *testing.B) {
	reg, pols := buildingRegistry(), buildingPolicies()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(reg, pols); err != nil {
			b.Fatal(err)
		}
	}
}
