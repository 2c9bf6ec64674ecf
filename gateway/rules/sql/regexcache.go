package sql

import (
	"regexp"
	"sync"
)

// Patterns usually are literals, compiled once; a pattern computed per message
// is compiled once per distinct text, up to a bound (then compiled each time).
const maxCachedRegexps = 256

var (
	reMu    sync.Mutex
	reCache = map[string]*regexp.Regexp{}
)

func cachedRegexp(p string) (*regexp.Regexp, error) {
	reMu.Lock()
	re, ok := reCache[p]
	reMu.Unlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	reMu.Lock()
	if len(reCache) < maxCachedRegexps {
		reCache[p] = re
	}
	reMu.Unlock()
	return re, nil
}
