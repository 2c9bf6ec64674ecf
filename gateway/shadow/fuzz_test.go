package shadow_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/shadow"
)

// updateSeeds are the documented request documents (docDocument, docDataFlow,
// docTutorial) and near misses.
var updateSeeds = []string{
	`{"state":{"desired":{"color":"red","power":"on"}}}`,
	`{"state":{"reported":{"color":"red","power":"on"}}}`,
	`{"state":{"desired":{"color":{"r":10},"engine":"ON"}}}`,
	`{"state":{"reported":{"ID":"SmartLamp21","ColorRGB":[128,128,128]}},"clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6"}`,
	`{"state":{"desired":{"colors":["BLUE"]}},"version":10}`,
	`{"state":{"reported":{"color":"red"},"desired":null}}`,
	`{"state":{"desired":{"engine":null}}}`,
	`{"state":{"desired":{"colors":[null,"RED","GREEN"]}}}`,
	`{"state":null}`,
	`{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}`,
	`{"state":{"delta":{}}}`,
	`{"state":{"desired":{"a":[{"b":[1,{"c":null}]}]}},"version":0}`,
	`{"state":{},"clientToken":""}`,
	`{"state":`,
	``,
	"{\"state\":{\"reported\":{\"\xff\":1}}}",
}

// FuzzUpdate feeds arbitrary update documents to a shadow that already holds
// state and checks the invariants every answer must keep.
func FuzzUpdate(f *testing.F) {
	for _, s := range updateSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ctx := context.Background()
		store := shadow.NewMemStore()
		svc := shadow.New(store, shadow.Options{})
		at := time.Unix(1700000000, 0)
		prefix := "$aws/things/fuzz/shadow/name/s"
		seed := `{"state":{"desired":{"color":"RED","n":{"a":1}},"reported":{"color":"GREEN","list":[1,2]}}}`
		if out := svc.Handle(ctx, shadow.Request{Topic: prefix + "/update", Payload: []byte(seed), Time: at}); len(out) == 0 || !strings.HasSuffix(out[0].Topic, "/accepted") {
			t.Fatalf("seed update refused:%s", show(out))
		}
		out := svc.Handle(ctx, shadow.Request{Topic: prefix + "/update", Payload: payload, Time: at})
		if len(out) == 0 {
			t.Fatalf("no response")
		}
		for _, r := range out {
			if !json.Valid(r.Payload) {
				t.Fatalf("response on %s is not JSON: %q", r.Topic, r.Payload)
			}
		}
		wantVersion := int64(1)
		switch out[0].Topic {
		case prefix + "/update/rejected":
			if len(out) != 1 {
				t.Fatalf("a rejection came with more messages:%s", show(out))
			}
			var e struct {
				Code    int
				Message string
			}
			if err := json.Unmarshal(out[0].Payload, &e); err != nil || e.Code < 400 || e.Code > 415 || e.Message == "" {
				t.Fatalf("error document %s: want a 4xx code and a message", out[0].Payload)
			}
		case prefix + "/update/accepted":
			wantVersion = 2
			last := out[len(out)-1].Topic
			if last != prefix+"/update/documents" || len(out) > 3 {
				t.Fatalf("accepted update answered with:%s", show(out))
			}
		default:
			t.Fatalf("first response on %s", out[0].Topic)
		}
		// The stored shadow is a valid document within the limits, and a new
		// Service over the same Store reads the same one.
		get := svc.Handle(ctx, shadow.Request{Topic: prefix + "/get", Time: at})
		if len(get) != 1 || get[0].Topic != prefix+"/get/accepted" {
			t.Fatalf("get after the update:%s", show(get))
		}
		var doc struct {
			State    map[string]json.RawMessage
			Metadata map[string]json.RawMessage
			Version  int64
		}
		if err := json.Unmarshal(get[0].Payload, &doc); err != nil {
			t.Fatalf("get document %s: %v", get[0].Payload, err)
		}
		if doc.Version != wantVersion {
			t.Fatalf("version = %d; want %d", doc.Version, wantVersion)
		}
		size := 0
		for _, k := range []string{"desired", "reported"} {
			if v, ok := doc.State[k]; ok {
				size += len(k) + len(v)
				if _, ok := doc.Metadata[k]; !ok {
					t.Fatalf("state.%s without metadata.%s: %s", k, k, get[0].Payload)
				}
			}
		}
		if size > shadow.DefaultMaxStateBytes {
			t.Fatalf("stored state of %d bytes; the limit is %d", size, shadow.DefaultMaxStateBytes)
		}
		again := shadow.New(store, shadow.Options{}).Handle(ctx, shadow.Request{Topic: prefix + "/get", Time: at})
		if len(again) != 1 || string(again[0].Payload) != string(get[0].Payload) {
			t.Fatalf("a new Service over the same Store reads%s\nwant%s", show(again), show(get))
		}
	})
}

// FuzzParseTopic checks that every topic ParseTopic accepts builds back to
// itself.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"$aws/things/lamp/shadow/update", "$aws/things/lamp/shadow/name/cfg/update/documents",
		"$aws/things/lamp/shadow/get/accepted", "$aws/things/lamp/shadow/name//get", "$aws/things/a/shadow/name/b/delete/rejected/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		tp, ok := shadow.ParseTopic(topic)
		if !ok {
			return
		}
		if s := tp.String(); s != topic {
			t.Fatalf("ParseTopic(%q).String() = %q", topic, s)
		}
		if !authz.ValidThingName(tp.Thing) || (tp.Shadow != "" && !shadow.ValidShadowName(tp.Shadow)) {
			t.Fatalf("ParseTopic(%q) accepted names %q, %q", topic, tp.Thing, tp.Shadow)
		}
	})
}

// FuzzSyncUpstream feeds arbitrary cloud messages to a Syncer: it must not
// panic, and whatever it asks to publish locally must be valid JSON.
func FuzzSyncUpstream(f *testing.F) {
	for _, s := range []string{
		`{"state":{"desired":{"on":true}},"metadata":{},"version":1,"timestamp":1}`,
		`{"previous":null,"current":{"state":{"desired":{"a":{"b":1}}},"version":2},"timestamp":1}`,
		`{"state":{"desired":null},"version":1,"clientToken":"gw1:1"}`,
		`{"code":413,"message":"x","clientToken":"gw1:1"}`,
		`{"state":{"desired":{"x":1},"delta":{"x":1}},"version":5,"clientToken":"gw1:get:1"}`,
		`{"code":404,"clientToken":"gw1:get:1"}`,
	} {
		for _, k := range []string{"update/accepted", "update/documents", "update/rejected", "get/accepted", "get/rejected"} {
			f.Add(k, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind string, payload []byte) {
		ctx := context.Background()
		svc := shadow.New(shadow.NewMemStore(), shadow.Options{})
		s, err := shadow.NewSyncer(ctx, svc, shadow.SyncOptions{TokenPrefix: "gw1",
			Shadows: []shadow.SyncShadow{{Thing: "lamp", Direction: shadow.Both}}})
		if err != nil {
			t.Fatal(err)
		}
		svc.Handle(ctx, shadow.Request{Topic: "$aws/things/lamp/shadow/update", Payload: []byte(`{"state":{"desired":{"x":2},"reported":{"y":1}}}`)})
		if _, err := s.Connected(ctx); err != nil {
			t.Fatal(err)
		}
		a, _ := s.Upstream(ctx, "$aws/things/lamp/shadow/"+kind, payload)
		for _, r := range a.Local {
			if !json.Valid(r.Payload) {
				t.Fatalf("local message on %s is not JSON: %q", r.Topic, r.Payload)
			}
		}
		for _, p := range a.Upstream {
			if !json.Valid(p.Payload) {
				t.Fatalf("upstream message on %s is not JSON: %q", p.Topic, p.Payload)
			}
		}
	})
}
