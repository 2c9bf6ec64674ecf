package config

import (
	"fmt"
	"regexp"

	"github.com/edgegw/edgegw/gateway/authz"
)

// ShadowConfig is the shadows section: when present, the gateway serves the
// AWS IoT Device Shadow MQTT API on its local broker and keeps the shadows in
// the store's database (beside the queue, encrypted like it).
//
//	shadows:
//	  sync:                      # needs a bridge section; the cloud shadow has the same names
//	    - thing: lamp-1
//	      direction: both        # up | down | both
//	    - thing: lock-3
//	      shadow: config         # a named shadow ("" or absent: the classic shadow)
//	      direction: down
//	      desired_owner: cloud   # who wins a conflict: cloud | device
//	      reported_owner: device
//	  token_prefix: plant-7-gw   # marks the gateway's own cloud requests; default bridge.client_id
type ShadowConfig struct {
	Sync        []ShadowSync `yaml:"sync"`
	TokenPrefix string       `yaml:"token_prefix"`
}

// ShadowSync is one shadow kept in sync with the cloud through the bridge.
type ShadowSync struct {
	Thing         string `yaml:"thing"`
	Shadow        string `yaml:"shadow"`
	Direction     string `yaml:"direction"`
	DesiredOwner  string `yaml:"desired_owner"`
	ReportedOwner string `yaml:"reported_owner"`
}

var (
	shadowNameRE  = regexp.MustCompile(`^[$a-zA-Z0-9:_-]{1,64}$`)
	tokenPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)
)

func (s *ShadowConfig) validate(r *report, p string, bridge *BridgeConfig) {
	if len(s.Sync) > 0 && bridge == nil {
		r.add(p+".sync", "needs a bridge section: shadows are synced with the cloud through the bridge")
	}
	if s.TokenPrefix != "" && !tokenPrefixRE.MatchString(s.TokenPrefix) {
		r.add(p+".token_prefix", "%q: want 1 to 40 of A-Z a-z 0-9 _ . -", s.TokenPrefix)
	}
	seen := map[[2]string]string{}
	for i := range s.Sync {
		sp := fmt.Sprintf("%s.sync[%d]", p, i)
		c := &s.Sync[i]
		switch {
		case c.Thing == "":
			r.add(sp+".thing", "required: the thing whose shadow is synced, e.g. lamp-1")
		case !authz.ValidThingName(c.Thing):
			r.add(sp+".thing", "%q: want 1 to 128 of a-z A-Z 0-9 : _ -", c.Thing)
		}
		if c.Shadow != "" && !shadowNameRE.MatchString(c.Shadow) {
			r.add(sp+".shadow", "%q: want 1 to 64 of a-z A-Z 0-9 $ : _ - (or none for the classic shadow)", c.Shadow)
		}
		switch c.Direction {
		case "up", "down", "both":
		case "":
			r.add(sp+".direction", "required: up, down or both")
		default:
			r.add(sp+".direction", "%q: want up, down or both", c.Direction)
		}
		for _, o := range []struct{ key, v string }{{"desired_owner", c.DesiredOwner}, {"reported_owner", c.ReportedOwner}} {
			if o.v != "" && o.v != "cloud" && o.v != "device" {
				r.add(sp+"."+o.key, "%q: want cloud or device", o.v)
			}
		}
		k := [2]string{c.Thing, c.Shadow}
		if prev, dup := seen[k]; dup {
			r.add(sp, "%s/%q: synced twice (also %s)", c.Thing, c.Shadow, prev)
		} else {
			seen[k] = sp
		}
	}
}
