package main

// Blast radius: one compromised device of each role tries every other topic
// and action it can think of; only its own may be accepted.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Probe is one attempted action.
type Probe struct {
	Action   string `json:"action"` // connect, publish, publish-retain, subscribe, publish-3.1.1
	Resource string `json:"resource"`
	Owner    string `json:"owner"` // thing the resource belongs to ("" = nobody/shared)
	Want     bool   `json:"want"`  // the policy allows it
	Got      bool   `json:"got"`   // the gateway accepted it
	Detail   string `json:"detail,omitempty"`
}

// BlastResult is the outcome for one compromised device.
type BlastResult struct {
	Device       string   `json:"device"`
	Role         string   `json:"role"`
	Tried        int      `json:"tried"`
	Allowed      int      `json:"allowed"`
	Unauthorized int      `json:"unauthorized"` // accepted but not allowed by its policy
	Refused      int      `json:"refused_own"`  // its own actions refused (policy broken)
	Reachable    []string `json:"reachable"`    // owners of accepted resources
	Devices      int      `json:"devices"`      // site size
	Probes       []Probe  `json:"probes"`
}

// ownAllowed is what the building's policies grant a device on its own
// resources (policies/*.json): the expectation the gateway is checked against.
func ownAllowed(d Device, action, topic string) bool {
	base := fmt.Sprintf("building/%s/floor/%02d/", building, d.Floor)
	shadow := "$aws/things/" + d.Name + "/shadow/"
	switch {
	case (action == "publish" || action == "publish-3.1.1") && (topic == shadow+"get" || topic == shadow+"update"):
		return true
	case action == "subscribe" && strings.HasPrefix(topic, shadow) && (strings.HasPrefix(topic, shadow+"get/") || strings.HasPrefix(topic, shadow+"update/")):
		return true
	}
	switch action {
	case "connect":
		return topic == d.Name
	case "publish", "publish-3.1.1":
		switch d.Role {
		case "temperature":
			return topic == base+"temp/"+d.Name
		case "occupancy":
			return topic == base+"occupancy/"+d.Name
		case "light":
			p := base + "light/" + d.Name + "/"
			return strings.HasPrefix(topic, p) && !strings.HasSuffix(topic, "/cmd")
		case "lock":
			return topic == base+"lock/"+d.Name+"/audit"
		}
	case "subscribe":
		switch d.Role {
		case "occupancy":
			return topic == base+"occupancy/"+d.Name+"/shadow"
		case "light", "lock":
			return topic == d.CmdTopic()
		}
	}
	return false
}

// deviceTopics are all topics that belong to t, whatever its role.
func deviceTopics(t Device) []string {
	base := fmt.Sprintf("building/%s/floor/%02d/", building, t.Floor)
	n := t.Name
	return []string{
		base + "temp/" + n, base + "occupancy/" + n, base + "occupancy/" + n + "/shadow",
		base + "light/" + n + "/status", base + "light/" + n + "/cmd",
		base + "lock/" + n + "/audit", base + "lock/" + n + "/cmd",
		base + "temp/" + n + "/x",
		"$aws/things/" + n + "/shadow/update", "$aws/things/" + n + "/shadow/get",
		"$aws/things/" + n + "/shadow/update/delta", "$aws/things/" + n + "/shadow/name/x/update",
	}
}

// Blast probes device d (excluded from the running fleet) against addr.
func Blast(ctx context.Context, site *Site, addr string, d Device, probes *Ledger) (*BlastResult, error) {
	tc, err := site.TLSConfig(d.Name)
	if err != nil {
		return nil, err
	}
	res := &BlastResult{Device: d.Name, Role: d.Role, Devices: len(site.Devices)}
	// Targets: itself, its neighbour, the same place on another floor, one
	// device of every other role on its floor, and the service things.
	var targets []Device
	targets = append(targets, d)
	for _, o := range site.Devices {
		if o.Name == d.Name {
			continue
		}
		switch {
		case o.Floor == d.Floor && o.Role == d.Role && (o.Index == d.Index+1 || o.Index == d.Index-1):
			targets = append(targets, o)
		case o.Floor != d.Floor && o.Index == d.Index && (o.Floor == d.Floor%site.Floors+1):
			targets = append(targets, o)
		case o.Floor == d.Floor && o.Role != d.Role && (o.Index-1)%(site.PerFlr/4) == 0:
			targets = append(targets, o)
		}
	}

	// 1. CONNECT as someone else (and as itself) with d's certificate.
	ids := []string{d.Name}
	for _, t := range targets[1:] {
		ids = append(ids, t.Name)
	}
	ids = append(ids, monitorThing, commanderThing, d.Name+"-2", strings.ToUpper(d.Name), "edgegw", "hq-gw")
	for _, id := range ids {
		p := Probe{Action: "connect", Resource: "client/" + id, Owner: ownerOf(site, id), Want: ownAllowed(d, "connect", id)}
		c, err := Dial(ctx, addr, tc, ClientOptions{ClientID: id, Version: 5, Clean: true})
		if err == nil {
			p.Got = true
			c.Close()
		} else {
			var de *dialError
			if !errors.As(err, &de) || de.stage != "connack" {
				return nil, fmt.Errorf("probe connect as %s: %w", id, err)
			}
			p.Detail = err.Error()
		}
		res.add(p)
	}

	// 2. One MQTT 5 session as itself: publish and subscribe everywhere.
	c, err := Dial(ctx, addr, tc, ClientOptions{ClientID: d.Name, Version: 5, Clean: true, Keepalive: 60 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("compromised %s cannot connect as itself: %w", d.Name, err)
	}
	defer c.Close()
	var pubs []string
	for _, t := range targets {
		pubs = append(pubs, deviceTopics(t)...)
	}
	floor := fmt.Sprintf("building/%s/floor/%02d/", building, d.Floor)
	shared := []string{floor + "cmd", "building/" + building + "/cmd", "sites/" + building + "/" + d.Topic(),
		"$SYS/broker/load", "cmd/" + d.Name + "/x", "building", "x/" + d.Name, d.Topic() + "/../../x"}
	pubs = append(pubs, shared...)
	seq := uint64(0)
	for _, topic := range pubs {
		for _, retain := range []bool{false, true} {
			act := "publish"
			if retain {
				act = "publish-retain"
			}
			p := Probe{Action: act, Resource: "topic/" + topic, Owner: ownerOfTopic(site, topic), Want: !retain && ownAllowed(d, "publish", topic)}
			seq++
			key := "probe:" + d.Name
			now := time.Now().UnixNano()
			probes.Sent(key, seq, now)
			wait := 10 * time.Second
			if strings.HasPrefix(topic, "$") {
				wait = time.Second // answered with silence, see below
			}
			pctx, cancel := context.WithTimeout(ctx, wait)
			code, err := c.Publish(pctx, topic, encodePayload(key, seq, now, 0), 1, retain)
			cancel()
			switch {
			case err == nil:
				probes.Acked(key, seq, code)
				p.Got = code < 0x80
				p.Detail = fmt.Sprintf("PUBACK 0x%02x", code)
			case errors.Is(err, context.DeadlineExceeded) && c.Err() == nil && ctx.Err() == nil:
				// mochi answers a client's PUBLISH to a $-topic with nothing at
				// all: not acknowledged, not delivered (the ledger checks).
				probes.Acked(key, seq, 0x80)
				p.Detail = "no PUBACK within " + wait.String()
			default:
				return nil, fmt.Errorf("probe publish %s: session ended: %w", topic, err)
			}
			res.add(p)
		}
	}
	subs := []string{"#", "+/#", "building/#", "building/+/floor/+/#", floor + "#", floor + "+/+/cmd",
		floor + "light/+/cmd", floor + "lock/+/cmd", floor + "occupancy/+/shadow", "$SYS/#", "sites/#",
		"$aws/things/+/shadow/#", "$aws/#", "$aws/things/" + d.Name + "/shadow/#"}
	for _, t := range targets {
		subs = append(subs, deviceTopics(t)...)
	}
	for _, f := range subs {
		p := Probe{Action: "subscribe", Resource: "topicfilter/" + f, Owner: ownerOfTopic(site, f), Want: ownAllowed(d, "subscribe", f)}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		code, err := c.Subscribe(sctx, f, 1)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("probe subscribe %s: session ended: %w", f, err)
		}
		p.Got = code < 0x80
		p.Detail = fmt.Sprintf("SUBACK 0x%02x", code)
		res.add(p)
	}

	// 3. MQTT 3.1.1 has no negative PUBACK: a refused publish must end the
	// session instead of being acknowledged.
	for _, t := range targets[1:min(3, len(targets))] {
		topic := t.Topic()
		p := Probe{Action: "publish-3.1.1", Resource: "topic/" + topic, Owner: t.Name, Want: false}
		c3, err := Dial(ctx, addr, tc, ClientOptions{ClientID: d.Name, Version: 4, Clean: true})
		if err != nil {
			return nil, fmt.Errorf("compromised %s cannot connect with 3.1.1: %w", d.Name, err)
		}
		seq++
		key := "probe:" + d.Name
		now := time.Now().UnixNano()
		probes.Sent(key, seq, now)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		code, err := c3.Publish(pctx, topic, encodePayload(key, seq, now, 0), 1, false)
		cancel()
		if err == nil {
			probes.Acked(key, seq, code)
			p.Got, p.Detail = true, "PUBACK"
		} else {
			probes.Acked(key, seq, 0x80) // refused by disconnect
			p.Detail = "disconnected: " + err.Error()
		}
		c3.Close()
		res.add(p)
	}
	slices.Sort(res.Reachable)
	res.Reachable = slices.Compact(res.Reachable)
	return res, nil
}

func (r *BlastResult) add(p Probe) {
	r.Tried++
	r.Probes = append(r.Probes, p)
	if p.Got {
		r.Allowed++
		owner := p.Owner
		if owner == "" {
			owner = "(shared:" + p.Resource + ")"
		}
		r.Reachable = append(r.Reachable, owner)
		if !p.Want {
			r.Unauthorized++
		}
	} else if p.Want {
		r.Refused++
	}
}

// ownerOf returns the thing named id, "" if no such thing.
func ownerOf(s *Site, id string) string {
	if id == monitorThing || id == commanderThing {
		return id
	}
	for _, d := range s.Devices {
		if d.Name == id {
			return id
		}
	}
	return ""
}

// ownerOfTopic names the device whose name is a level of topic.
func ownerOfTopic(s *Site, topic string) string {
	for _, lvl := range strings.Split(topic, "/") {
		if o := ownerOf(s, lvl); o != "" {
			return o
		}
	}
	return ""
}

// Print writes one result line (and every unexpected probe).
func (r *BlastResult) Print(w io.Writer) {
	fmt.Fprintf(w, "  %-11s %-14s blast radius: %d/%d  (tried %d, allowed %d, unauthorized accepted %d, own refused %d)\n",
		r.Role, r.Device, len(r.Reachable), r.Devices, r.Tried, r.Allowed, r.Unauthorized, r.Refused)
	for _, p := range r.Probes {
		if p.Got != p.Want {
			fmt.Fprintf(w, "      UNEXPECTED %s %s: accepted=%v, policy allows=%v (%s)\n", p.Action, p.Resource, p.Got, p.Want, p.Detail)
		}
	}
}
