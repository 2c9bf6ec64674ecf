package pkicmd

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/cmd/edgegw/pkicmd/pkitest"
	"github.com/edgegw/edgegw/gateway/clock"
)

// TestPKIClockFloorIsBuildDate: the PKI commands' clock floor is the build date held by
// clock.BuildInfo (the daemon's clock guard reads the same), or clock.DefaultBuildFloor
// without one; a clock before it makes certificates start at the floor, with a warning.
func TestPKIClockFloorIsBuildDate(t *testing.T) {
	saved := clock.GetBuildInfo()
	t.Cleanup(func() { clock.SetBuildInfo(saved) })
	future := time.Now().UTC().AddDate(1, 0, 0).Truncate(time.Second)

	for _, tc := range []struct {
		name      string
		date      time.Time
		wantFloor time.Time
		clamped   bool // the system clock is before the floor
	}{
		{"no build date", time.Time{}, clock.DefaultBuildFloor, false},
		{"build date before the default floor", clock.DefaultBuildFloor.AddDate(0, -1, 0), clock.DefaultBuildFloor, false},
		{"build date after the clock", future, future, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.SetBuildInfo(clock.BuildInfo{Version: saved.Version, Commit: saved.Commit, Date: tc.date})
			if got := clockFloor(); !got.Equal(tc.wantFloor) {
				t.Fatalf("clockFloor() = %v; want %v", got, tc.wantFloor)
			}
			// The daemon's clock guard, given the same build info and a Pi that booted in
			// 1970, answers the same floor.
			guard := clock.New(clock.GetBuildInfo().Date, func() time.Time { return time.Unix(0, 0) }, nil)
			if got := guard.Now(); !got.Equal(tc.wantFloor) {
				t.Errorf("clock guard Now() = %v; want the PKI floor %v", got, tc.wantFloor)
			}

			conf, dir, _ := pkitest.Site(t)
			code, _, errs := run(t, "pki", "init", "-c", conf)
			if code != 0 {
				t.Fatalf("pki init: exit %d\n%s", code, errs)
			}
			nb := pkitest.CANotBefore(t, dir)
			warn := "is before this build (" + tc.wantFloor.Format(time.DateOnly) + ")"
			if tc.clamped {
				if !nb.Equal(tc.wantFloor) || !strings.Contains(errs, warn) {
					t.Errorf("clock before the build date: CA NotBefore %v, stderr %q; want NotBefore %v and a warning containing %q", nb, errs, tc.wantFloor, warn)
				}
			} else if nb.After(time.Now()) || strings.Contains(errs, "warning:") {
				t.Errorf("sane clock: CA NotBefore %v, stderr %q; want a NotBefore before now and no warning", nb, errs)
			}
		})
	}
}
