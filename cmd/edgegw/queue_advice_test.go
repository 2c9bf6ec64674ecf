package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueueAdviceForSetup: the queue commands explain the setup they see
// instead of telling root to make the queue key by hand (which the daemon,
// running as edgegw, could then not read).
func TestQueueAdviceForSetup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bridge bool
		args   []string
		code   int
		want   string
	}{
		{"stats without a bridge", false, []string{"queue", "stats"}, 0, "has no bridge section"},
		{"peek without a bridge", false, []string{"queue", "peek"}, 1, "has no bridge section"},
		{"stats before the first start", true, []string{"queue", "stats"}, 0, "the daemon creates it, and its encryption key, at its first start"},
		{"export before the first start", true, []string{"queue", "export"}, 1, "the daemon creates it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCheckRunSite(t)
			s.bridge = tc.bridge
			if tc.bridge { // as packaged: an encrypted queue whose key the daemon makes
				s.vals["enckey"] = "file:" + filepath.Join(s.dir, "state", "queue.key")
			}
			s.write(t)
			code, stdout, stderr := edgegw(t, append(tc.args, "-c", s.conf)...)
			out := stdout + stderr
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want exit %d and %q", code, out, tc.code, tc.want)
			}
			if strings.Contains(out, "head -c") || strings.Contains(out, "create it with") {
				t.Errorf("output %q tells the user to make the key by hand", out)
			}
		})
	}
}
