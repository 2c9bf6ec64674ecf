package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count read from the config. It accepts a whole number
// followed by an optional unit: B, KiB, MiB, GiB, TiB (powers of two) or
// KB, MB, GB, TB (powers of ten), e.g. "512MiB", "2GiB", "1GB", "4096".
type Size int64

var sizeUnits = map[string]int64{
	"":    1,
	"B":   1,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
	"TiB": 1 << 40,
	"KB":  1e3,
	"MB":  1e6,
	"GB":  1e9,
	"TB":  1e12,
}

const sizeWant = "want a whole number and a unit, e.g. 512MiB, 2GiB, 1GB (units: B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"

// ParseSize parses a size such as "512MiB". See Size for the accepted forms.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("%q: must not be negative", s)
		}
		return 0, fmt.Errorf("%q: %s", s, sizeWant)
	}
	unit := strings.TrimSpace(t[i:])
	mult, ok := sizeUnits[unit]
	if !ok {
		if strings.HasPrefix(unit, ".") {
			return 0, fmt.Errorf("%q: fractions are not supported; use a smaller unit (e.g. 1536MiB for 1.5GiB)", s)
		}
		return 0, fmt.Errorf("%q: unknown unit %q; %s", s, unit, sizeWant)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return Size(n * mult), nil
}

// String formats the size with the largest unit that divides it, binary
// units first ("2GiB", "1GB", "1500B").
func (s Size) String() string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "KB"} {
		m := sizeUnits[u]
		if s != 0 && int64(s)%m == 0 {
			return strconv.FormatInt(int64(s)/m, 10) + u
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Bytes returns the size as an int64 byte count.
func (s Size) Bytes() int64 { return int64(s) }

func (s *Size) decodeScalar(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// Duration is a time span read from the config: a Go duration ("90s",
// "36h", "1h30m") or a whole number of days, optionally followed by a Go
// duration ("7d", "1d12h"). Negative durations are refused.
type Duration time.Duration

const durationWant = "want a number and a unit, e.g. 90s, 10m, 36h, 7d"

var errNegative = errors.New("must not be negative")

// ParseDuration parses a duration such as "7d". See Duration for the forms.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%q: %s", s, durationWant)
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%q: %w", s, errNegative)
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return 0, fmt.Errorf("%q: missing unit; %s", s, durationWant)
	}
	var days time.Duration
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: %s", s, durationWant)
		}
		if n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("%q: too large", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		t = t[i+1:]
		if t == "" {
			return Duration(days), nil
		}
		if strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
			return 0, fmt.Errorf("%q: %s", s, durationWant)
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q: %s", s, durationWant)
	}
	if d > math.MaxInt64-days {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return Duration(days + d), nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats whole days as "Nd" and anything else as a Go duration.
func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	return td.String()
}

func (d *Duration) decodeScalar(v string) error {
	n, err := ParseDuration(v)
	if err != nil {
		return err
	}
	*d = n
	return nil
}
