package broker

import (
	"errors"
	"fmt"

	"github.com/edgegw/edgegw/gateway/authz"
)

// Preflight runs every check New makes before it binds a listener: the
// registry and the policies load as New loads them, each listener's address rule, server certificate against its key,
// CA bundle and CRL, and password file. It binds nothing and keeps nothing;
// the error (all problems, joined) reads exactly as New's would, because
// both run the same constructors. `edgegw check` and the start of `edgegw
// run` both call it, through gateway.Preflight. It returns the policies it
// loaded (nil when they did not load) for the checks after it.
func Preflight(o Options) (*authz.Engine, error) {
	var errs []error
	// As New loads them: a policy file that does not load denies only what
	// attaches it (`edgegw check` also runs the strict CheckPolicy).
	eng, _, err := LoadPolicy(o.Registry, o.Policies)
	if err != nil {
		eng = nil
		errs = append(errs, err)
	}
	for _, lo := range o.Listeners {
		if err := preflightListener(lo); err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", lo.Name, err))
		}
	}
	return eng, errors.Join(errs...)
}

// preflightListener is addListener up to the bind.
func preflightListener(lo ListenerOptions) error {
	_, err := prepareListener(lo)
	return err
}
