package shadow_test

import (
	"testing"

	"github.com/edgegw/edgegw/gateway/shadow"
	"github.com/edgegw/edgegw/gateway/shadow/shadowtest"
)

func TestMemStore(t *testing.T) {
	var last *shadow.MemStore
	shadowtest.StoreSuite(t, shadowtest.Opener{
		Open: func(t *testing.T) shadow.Store { last = shadow.NewMemStore(); return last },
		// A MemStore "reopened" in the same process is the same map: this runs
		// the version-survival test against it as a check of the suite itself.
		Reopen: func(t *testing.T) shadow.Store { return last },
	})
}
