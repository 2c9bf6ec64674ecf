package bridge

import (
	"fmt"
	"net"
	"strings"
)

// Check is what New refuses, without a queue or a connection, for
// `edgegw check`: defaults and the profile applied to a copy, Validate, the
// routes compiled and checked against the profile's cloud (every refused
// route listed), and the password file's mode.
func (c Config) Check() error {
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := c.compileRoutes(c.Routes); err != nil {
		return err
	}
	if c.PasswordFile != "" {
		if _, err := ReadPasswordFile(c.PasswordFile); err != nil {
			return fmt.Errorf("bridge %s: %w", c.Name, err)
		}
	}
	return nil
}

// Warnings returns what a config allows but an operator should know, for
// `edgegw check`: a 3.1.1 bridge without an envelope (the cloud cannot drop
// duplicates), and both-direction routes on 3.1.1 (no No Local: the upstream
// echoes the gateway's own messages back down). Defaults are applied to a
// copy first.
func (c Config) Warnings() []string {
	c.setDefaults()
	var w []string
	if c.Envelope == EnvelopeNone {
		w = append(w, fmt.Sprintf("bridge %s: envelope none: upstream messages carry no device and sequence number, so the cloud cannot tell a message resent after a reconnect from a new one; set envelope: topic-suffix or json (MQTT 3.1.1 has no user properties)", c.Name))
	}
	if c.Protocol == MQTT311 {
		for _, r := range c.Routes {
			if r.Direction == Both {
				w = append(w, fmt.Sprintf("bridge %s: route %q: direction both on MQTT 3.1.1: there is no No Local, so the upstream sends the gateway's own messages back down and local subscribers get them twice; use separate out and in topics", c.Name, r.Name))
			}
		}
	}
	return w
}

// CheckBridges checks several bridges together (after each one's own
// Validate): names unique; route names unique across bridges (a route name
// names one queue in the store, so a topic bridged to two upstreams needs a
// route in each bridge, under two names, and is queued once per bridge); and
// no two bridges with the same client ID on the same upstream, which would
// take each other's session over in a loop.
func CheckBridges(cfgs []Config) []error {
	var errs []error
	names := map[string]bool{}
	routes := map[string]string{} // route name -> bridge
	ids := map[string]string{}    // host:port + client ID -> bridge
	for i, c := range cfgs {
		name := c.Name
		if name == "" {
			name = "default"
		}
		if names[name] {
			errs = append(errs, fmt.Errorf("bridges[%d]: name %q used twice: give every bridge its own name", i, name))
		}
		names[name] = true
		for _, r := range c.Routes {
			rn := r.Name
			if rn == "" {
				rn = r.Direction.String() + ":" + r.Topic
			}
			if other, ok := routes[rn]; ok && other != name {
				errs = append(errs, fmt.Errorf("bridges[%d] (%s): route %q is also a route of bridge %s: route names name queues and must be unique across bridges (e.g. %s-%s)", i, name, rn, other, name, rn))
			}
			routes[rn] = name
		}
		for _, u := range c.Upstreams {
			if u.URL == nil {
				continue
			}
			key := strings.ToLower(hostPort(u)) + " " + c.ClientID
			if other, ok := ids[key]; ok && other != name {
				errs = append(errs, fmt.Errorf("bridges[%d] (%s): client_id %q on %s is also bridge %s's: the upstream would disconnect one for the other, over and over; give each bridge its own client_id", i, name, c.ClientID, hostPort(u), other))
			}
			ids[key] = name
		}
	}
	return errs
}

// hostPort is the address an upstream URL dials.
func hostPort(u Upstream) string {
	port := u.URL.Port()
	if port == "" {
		port = "1883"
		if isTLSScheme(u.URL.Scheme) {
			port = "8883"
		}
	}
	return net.JoinHostPort(u.URL.Hostname(), port)
}
