package gateway

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/observe"
)

// TestReloadStateStaysVisible: a reload with an invalid config, or with a
// change that needs a restart, leaves edgegw_reload_success 0 (and
// edgegw_config_restart_required 1, the section named in status) even
// though the broker's part of the reload succeeded, until a reload applies
// everything; edgegw_reload_failures_total counts them.
func TestReloadStateStaysVisible(t *testing.T) {
	e := startObsGateway(t)
	good, err := os.ReadFile(e.conf)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if err := os.WriteFile(e.conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := func() (observe.Status, string) {
		var s observe.Status
		if err := observe.AdminGet(context.Background(), e.socket, "/status", &s); err != nil {
			t.Fatalf("status: %v", err)
		}
		_, body := httpGet(t, "http://"+e.metrics+"/metrics")
		return s, body
	}
	for _, step := range []struct {
		name        string
		conf        []byte
		wantErr     bool
		wantOK      string
		wantRestart string
		sections    []string
		failures    string
	}{
		{"invalid config", []byte("version: 1\nlisteners: [}\n"), true, "0", "0", nil, "1"},
		{"good again", good, false, "1", "0", nil, "1"},
		{"site changed (needs a restart)", []byte(strings.Replace(string(good), "site: obs-test", "site: obs-other", 1)), true, "0", "1", []string{"site"}, "2"},
		{"still pending after a second reload", []byte(strings.Replace(string(good), "site: obs-test", "site: obs-other", 1)), true, "0", "1", []string{"site"}, "3"},
		{"reverted", good, false, "1", "0", nil, "3"},
	} {
		write(step.conf)
		err := e.g.Reload()
		if (err != nil) != step.wantErr {
			t.Fatalf("%s: Reload() = %v; want error %v", step.name, err, step.wantErr)
		}
		if len(step.sections) > 0 && !errors.Is(err, ErrRestartRequired) {
			t.Errorf("%s: Reload() = %v; want ErrRestartRequired", step.name, err)
		}
		s, body := state()
		for series, want := range map[string]string{
			"edgegw_reload_success":          step.wantOK,
			"edgegw_config_restart_required": step.wantRestart,
			"edgegw_reload_failures_total":   step.failures,
		} {
			if got, _ := metricValue(body, series); got != want {
				t.Errorf("%s: %s = %q; want %q", step.name, series, got, want)
			}
		}
		if s.Reload.OK != (step.wantOK == "1") {
			t.Errorf("%s: status reload.ok = %v; want %v (error %q)", step.name, s.Reload.OK, !s.Reload.OK, s.Reload.Error)
		}
		if !slices.Equal(s.Reload.RestartRequired, step.sections) {
			t.Errorf("%s: status reload.restart_required = %v; want %v", step.name, s.Reload.RestartRequired, step.sections)
		}
		if !s.Reload.OK && s.Reload.Error == "" {
			t.Errorf("%s: status reload.error empty; want the reason", step.name)
		}
	}
}
