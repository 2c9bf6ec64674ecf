package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

func TestApplyMemoryLimit(t *testing.T) {
	tests := []struct {
		name    string
		limit   config.Size
		env     string
		wantSet int64 // -1: not set
		wantLog string
	}{
		{"config", 140 << 20, "", 140 << 20, "memory limit set"},
		{"environment wins", 140 << 20, "100MiB", -1, "memory limit from the environment"},
		{"environment off wins", 140 << 20, "off", -1, "GOMEMLIMIT=off"},
		{"zero leaves the default", 0, "", -1, "no memory limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			got := int64(-1)
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tt.env
				}
				return ""
			}
			applyMemoryLimit(tt.limit, getenv, func(n int64) int64 { got = n; return 0 }, log)
			if got != tt.wantSet {
				t.Errorf("set %d; want %d", got, tt.wantSet)
			}
			if !strings.Contains(buf.String(), tt.wantLog) {
				t.Errorf("log %q; want it to contain %q", buf.String(), tt.wantLog)
			}
		})
	}
}
