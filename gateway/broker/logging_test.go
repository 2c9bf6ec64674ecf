package broker

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/edgegw/edgegw/gateway/gatewaytest"
)

// TestLogComponentOnce: every line, the broker's and mochi's included,
// carries exactly one component key, the most specific one.
func TestLogComponentOnce(t *testing.T) {
	var buf gatewaytest.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// As gateway.New derives its logger.
	log := WithComponents(base).With("component", "gateway")
	e := newEnv(t, func(o *Options) { o.Logger = log })
	// mochi logs "mochi mqtt starting" (Info) and client lifecycle (Debug).
	c, err := e.connectV5(t, e.pki.Issue(t, "sensor-a"), "sensor-a")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.C.Disconnect(&paho.Disconnect{})
	log.With("component", "audit").With("device", "d").Info("derived twice")
	log.With("component", "x").WithGroup("grp").Info("grouped", "k", "v")
	log.Info("own component", "component", "main")
	e.b.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	comps := map[string]bool{}
	for _, l := range lines {
		if n := strings.Count(l, "component="); n != 1 {
			t.Errorf("%d component keys in %q; want 1", n, l)
		}
		if i := strings.Index(l, "component="); i >= 0 {
			comps[strings.Fields(l[i:])[0]] = true
		}
	}
	for _, c := range []string{"component=mochi", "component=broker", "component=audit", "component=main", "component=x"} {
		if !comps[c] {
			t.Errorf("no line with %s in:\n%s", c, buf.String())
		}
	}
}
