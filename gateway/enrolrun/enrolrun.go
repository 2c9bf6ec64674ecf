// Package enrolrun runs the enrolment service (fleet provisioning over
// MQTT, gateway/enrol) as the daemon runs it (config section enrolment):
//
//	config.Enrolment ──Enrol()──> enrol.Service (the site CA in enrolment.pki_dir, the registry devices)
//	  ──> Broker.SetEnrol: requests from the LAN, responses to the requesting client only
//	  ──> OnEvent ──> the audit log (and through it the metrics: edgegw_enrol_events_total)
//	a sweeper: Service.Sweep every sweepEvery (renewed certificates superseded, abandoned pending ones revoked)
//
// The registry and the CRL the service writes are the files the broker already watches, so
// an enrolled thing may connect, and a superseded certificate is refused, within the broker's
// watch interval. Preflight is the check `edgegw check` and the daemon's start make of the
// section, writing nothing.
//
// What it needs of the broker and the audit log are small interfaces (Broker, Auditor) that
// *broker.Broker and *audit.Log satisfy. It must not import gateway (the wiring imports it),
// mochi, badger, prometheus or paho: the broker, the store, observe and the bridge own those.
package enrolrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/edgegw/edgegw/gateway/audit"
	"github.com/edgegw/edgegw/gateway/authz"
	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/clock"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/enrol"
	"github.com/edgegw/edgegw/gateway/pki"
)

// sweepEvery is how often the enrolment service revokes what is due: a renewal's old
// certificate a few seconds after the new one connected.
const sweepEvery = 5 * time.Second

// Broker is where the service answers: *broker.Broker (nil: the provisioning topics are
// ordinary topics again).
type Broker interface{ SetEnrol(broker.EnrolService) }

// Auditor records the service's events; *audit.Log satisfies it.
type Auditor interface{ Record(audit.Event) }

var (
	_ Broker              = (*broker.Broker)(nil)
	_ Auditor             = (*audit.Log)(nil)
	_ broker.EnrolService = (*enrol.Service)(nil)
)

// Enrolment is what Run started for the enrolment section. Its methods are safe on nil.
type Enrolment struct {
	svc    *enrol.Service
	b      Broker
	cancel context.CancelFunc
	done   chan struct{}
}

// Open builds the enrolment service, installs it on b and starts its sweeper. It
// returns nil, nil without an enrolment section.
func Open(cfg *config.Config, b Broker, aud Auditor, log *slog.Logger) (*Enrolment, error) {
	if cfg.Enrolment == nil {
		return nil, nil
	}
	svc, err := enrol.New(enrol.Options{
		PKI:     pki.Options{Dir: cfg.Enrolment.PKIDir, Devices: cfg.Devices, NotBefore: clock.BuildFloor(), Logger: log},
		Config:  cfg.Enrolment.Enrol(),
		Logger:  log,
		OnEvent: func(e enrol.Event) { aud.Record(enrolAudit(e)) },
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Enrolment{svc: svc, b: b, cancel: cancel, done: make(chan struct{})}
	b.SetEnrol(svc)
	go e.sweep(ctx, log)
	return e, nil
}

func (e *Enrolment) sweep(ctx context.Context, log *slog.Logger) {
	defer close(e.done)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := e.svc.Sweep(ctx, now); err != nil && ctx.Err() == nil {
				log.Warn("enrolment sweep: revoking due certificates failed; retrying", "component", "enrol", "err", err)
			}
		}
	}
}

// Service is the running service (nil: no enrolment section), for the status's figures.
func (e *Enrolment) Service() *enrol.Service {
	if e == nil {
		return nil
	}
	return e.svc
}

// Close stops the sweeper and takes the service off the broker. Safe on nil.
func (e *Enrolment) Close() {
	if e == nil {
		return
	}
	e.b.SetEnrol(nil)
	e.cancel()
	<-e.done
}

// enrolAudit is the audit line of an enrolment event (never a token or payload).
func enrolAudit(e enrol.Event) audit.Event {
	ev := audit.Event{Event: e.Kind, Device: e.Device, ClientID: e.ClientID, Serial: e.Serial}
	switch e.Kind {
	case enrol.EventIssued:
		ev.Event = audit.EventEnrolIssued
		if e.Renewal {
			ev.Event = audit.EventEnrolRenewed
		}
	case enrol.EventRegistered:
		ev.Event = audit.EventEnrolRegistered
	case enrol.EventRefused:
		ev.Event = audit.EventEnrolRefused
		ev.Reason = e.Code + ": " + e.Reason
	case enrol.EventSuperseded:
		ev.Event = audit.EventEnrolSuperseded
	case enrol.EventAbandoned:
		ev.Event = audit.EventEnrolAbandoned
	}
	if e.Caller != "" {
		ev.Resource = "certificate/" + e.Caller
	}
	return ev
}

// Preflight checks what the enrolment section names, as Run would meet it: the site
// CA in pki_dir, the state file (enrol.json) there, each template's policies among the
// policies, each pre-provisioning hook's program. It writes nothing. policies are the ones the
// broker's preflight loaded (nil when they did not load: the broker's preflight reported why,
// and the templates' policy names are not checked).
func Preflight(cfg *config.Config, policies *authz.Engine) error {
	e := cfg.Enrolment
	if e == nil {
		return nil
	}
	var errs []error
	if _, err := os.Stat(filepath.Join(e.PKIDir, pki.CACertFile)); err != nil {
		errs = append(errs, cfg.Errorf("enrolment.pki_dir", "%s: no site CA there (%v); run `edgegw pki init` or set enrolment.pki_dir to the CA's directory", e.PKIDir, err))
	} else if _, err := enrol.New(enrol.Options{PKI: pki.Options{Dir: e.PKIDir}, Config: e.Enrol()}); err != nil {
		errs = append(errs, cfg.Errorf("enrolment.pki_dir", "%v", err))
	}
	if policies != nil {
		for i, t := range e.Templates {
			for j, name := range t.Policies {
				if _, ok := policies.Policy(name); !ok {
					errs = append(errs, cfg.Errorf(fmt.Sprintf("enrolment.templates[%d].policies[%d]", i, j),
						"%q: no such policy in %s; enrolled things would be denied everything: add %s.json there or fix the name", name, cfg.Policies, name))
				}
			}
		}
	}
	for i, t := range e.Templates {
		if h := t.PreProvisioningHook; h != nil && len(h.Command) > 0 {
			if _, err := exec.LookPath(h.Command[0]); err != nil {
				errs = append(errs, cfg.Errorf(fmt.Sprintf("enrolment.templates[%d].pre_provisioning_hook.command", i),
					"%s: %v; give the path of an executable program", h.Command[0], err))
			}
		}
	}
	return errors.Join(errs...)
}
