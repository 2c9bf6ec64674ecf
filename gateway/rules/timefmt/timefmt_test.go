package timefmt

import (
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	belize, ok := Zone("America/Belize")
	if !ok {
		t.Fatal("America/Belize does not resolve")
	}
	at := time.Date(2016, time.March, 4, 0, 5, 6, 789_000_000, time.UTC)
	for _, tc := range []struct {
		name, pattern string
		t             time.Time
		want          string
	}{
		{"ISO with offset", "yyyy-MM-dd'T'HH:mm:ss.SSSZZ", at, "2016-03-04T00:05:06.789+00:00"},
		{"names and 12-hour clock", "EEEE d MMMM yy h:mm a G", at, "Friday 4 March 16 12:05 AM AD"},
		{"short names, k and K", "EEE MMM DDD k K", at, "Fri Mar 064 24 0"},
		{"X is Z at UTC, x is not", "X x", at, "Z +0000"},
		{"a zone", "HH:mm z ZZZ Z", at.In(belize), "18:05 CST America/Belize -0600"},
		{"quotes", "'o''clock' ''", at, "o'clock '"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := p.Format(tc.t); !ok || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, s string
		want             time.Time // zero: no match
	}{
		{"ISO", "yyyy-MM-dd'T'HH:mm:ss.SSS", "2016-03-04T00:05:06.789", time.Date(2016, 3, 4, 0, 5, 6, 789_000_000, time.UTC)},
		{"fixed widths", "yyyyMMddHHmm", "201603041730", time.Date(2016, 3, 4, 17, 30, 0, 0, time.UTC)},
		{"month name and PM", "d MMM yyyy h:mm a", "4 Mar 2016 5:30 PM", time.Date(2016, 3, 4, 17, 30, 0, 0, time.UTC)},
		{"an offset", "yyyy-MM-dd HH:mm Z", "2016-03-04 17:30 GMT+01:00", time.Date(2016, 3, 4, 16, 30, 0, 0, time.UTC)},
		{"a bare offset", "yyyy-MM-dd HH:mm Z", "2016-03-04 17:30 +0100", time.Date(2016, 3, 4, 16, 30, 0, 0, time.UTC)},
		{"a bare negative offset with a colon", "yyyy-MM-dd HH:mm XXX", "2016-03-04 17:30 -05:30", time.Date(2016, 3, 4, 23, 0, 0, 0, time.UTC)},
		{"a sign without digits", "yyyy-MM-dd HH:mm Z", "2016-03-04 17:30 +", time.Time{}},
		{"31 April", "yyyy-MM-dd", "2016-04-31", time.Time{}},
		{"trailing text", "yyyy", "2016x", time.Time{}},
		{"era is not parsed", "G yyyy", "AD 2016", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := p.Parse(tc.s)
			if tc.want.IsZero() {
				if ok {
					t.Errorf("got %v; want no match", got)
				}
				return
			}
			if !ok || !got.Equal(tc.want) {
				t.Errorf("got %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	for p, want := range map[string]string{
		"yyyy-qq": `pattern letter 'q' is not supported`,
		"'open":   "quote opened at 0 is not closed",
	} {
		if _, err := Compile(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile(%q) = %v; want an error containing %q", p, err, want)
		}
	}
	if p, _ := Compile("zzzz"); !p.FullZoneName() {
		t.Error("zzzz: FullZoneName false; want true")
	}
}
