package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/gatewaytest"
	"github.com/edgegw/edgegw/gateway/observe"
)

// nextVlog is the name badger gives the next value-log file in dir.
func nextVlog(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	top := -1
	for _, e := range ents {
		var id int
		if n, _ := fmt.Sscanf(e.Name(), "%06d.vlog", &id); n == 1 && strings.HasSuffix(e.Name(), ".vlog") {
			top = max(top, id)
		}
	}
	if top < 0 {
		t.Fatalf("no .vlog file in %s", dir)
	}
	return fmt.Sprintf("%06d.vlog", top+1)
}

// TestQueueOpenRepairE2E: a crash left a zero-length value-log file in the
// queue of a stopped `edgegw run` holding messages for a cloud that is down.
// The next `edgegw run` repairs it at open and says so: a Warn log line
// (component=store), an audit record, the repair counter and a line in
// `edgegw status`; every queued message still reaches the cloud.
func TestQueueOpenRepairE2E(t *testing.T) {
	up := gatewaytest.NewUpstream(t, cmdUpstream)
	cloud := startCloudSub(t, up, "sites/#")
	g := newBridgeGW(t, up, gwOptions{})
	up.Stop()
	todo := sensorMessages(2, 20)
	acked, failed := g.publishAll(t, todo, 2, nil)
	if len(failed) > 0 {
		t.Fatalf("%d publishes failed with the cloud down; want all queued", len(failed))
	}
	g.stop()

	qdir := filepath.Join(g.dir, "state", "queue")
	planted := nextVlog(t, qdir)
	gatewaytest.WriteFile(t, filepath.Join(qdir, planted), nil, 0o600)

	// The restart serves metrics and the admin socket.
	metrics := gatewaytest.FreeAddr(t)
	sockDir, err := os.MkdirTemp("", "egw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "admin.sock")
	conf := readFile(t, g.conf)
	for old, repl := range map[string]string{
		`metrics: {address: ""}`: fmt.Sprintf("metrics: {address: %q}", metrics),
		`admin: {socket: ""}`:    fmt.Sprintf("admin: {socket: %q}", socket),
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("config has no %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	gatewaytest.WriteFile(t, g.conf, []byte(conf), 0o644)
	g.start()
	// start returns once the listener accepts; the queue opens after it
	// binds and the metrics endpoint starts last.
	for i := 0; ; i++ {
		if code, _ := health(metrics); code != 0 {
			break
		}
		if i > 500 {
			t.Fatalf("no /healthz on %s after 500 tries", metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Removed, then created again by badger's own open (a new value log at
	// every open), this time with its header.
	if fi, err := os.Stat(filepath.Join(qdir, planted)); err == nil && fi.Size() == 0 {
		t.Errorf("%s after the restart: still 0 bytes; want it repaired", planted)
	}
	logText := g.log.String()
	_, restart, _ := strings.Cut(logText, "----- start 2 -----")
	var logLine string
	for _, l := range strings.Split(restart, "\n") {
		if strings.Contains(l, "component=store") && strings.Contains(l, "kind=empty-log") && strings.Contains(l, "did=removed") && strings.Contains(l, "file="+planted) {
			logLine = l
		}
	}
	if !strings.Contains(logLine, "level=WARN") {
		t.Errorf("log line for the repair: %q; want a WARN line with component=store kind=empty-log file=%s\n%s",
			logLine, planted, gatewaytest.LastBytes([]byte(restart), 4096))
	}

	var audited []map[string]any
	for _, l := range strings.Split(readFile(t, filepath.Join(g.dir, "audit.log")), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) == nil && ev["event"] == "queue_repair" {
			audited = append(audited, ev)
		}
	}
	if len(audited) != 1 || audited[0]["resource"] != "queue/"+planted || !strings.HasPrefix(fmt.Sprint(audited[0]["reason"]), "empty-log (0 bytes): ") {
		t.Errorf("queue_repair audit records: %v; want one for queue/%s, reason \"empty-log (0 bytes): ...\"", audited, planted)
	}

	sc := scrape(t, metrics)
	for series, want := range map[string]float64{
		`edgegw_queue_open_repairs_total{kind="empty-log"}`:            1,
		`edgegw_queue_open_repairs_total{kind="short-log-header"}`:     0,
		`edgegw_queue_open_repairs_total{kind="discard-cut-short"}`:    0,
		`edgegw_queue_open_repairs_total{kind="manifest-torn-record"}`: 0,
		`edgegw_queue_open_repairs_total{kind="manifest-cut-short"}`:   0,
		`edgegw_queue_salvaged_messages_total`:                         0,
		`edgegw_queue_salvage_lost_records_total`:                      0,
	} {
		if got := sample(sc, series); got != want {
			t.Errorf("%s = %v; want %v", series, got, want)
		}
	}

	var st observe.Status
	if err := observe.AdminGet(context.Background(), socket, "/status", &st); err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	if st.Queue == nil || st.Queue.Open == nil || st.Queue.Open.Repairs["empty-log"] != 1 || st.Queue.Open.MovedTo != "" {
		t.Errorf("status queue.open: %+v; want repairs {empty-log: 1}, not moved", st.Queue)
	}
	code, out, errOut := edgegw(t, "status", "--socket", socket)
	const wantLine = "at open after a crash: repaired 1 file (empty-log 1)"
	if code != 0 || !strings.Contains(out, wantLine) {
		t.Errorf("edgegw status: exit %d, stdout:\n%s\nstderr: %s\nwant a line %q", code, out, errOut, wantLine)
	}

	up.Start()
	cloud.waitDistinct(t, len(todo), 30*time.Second, 60*time.Second)
	if missing, n, _ := cloud.check(ackedSet(acked)); n > 0 {
		t.Fatalf("%d queued messages never arrived upstream after the repair, e.g. %v", n, missing)
	}
}

func ackedSet(ms []msgID) map[msgID]bool {
	s := make(map[msgID]bool, len(ms))
	for _, m := range ms {
		s[m] = true
	}
	return s
}
