package observe

import (
	"slices"
	"time"
)

// Reload state: two sources feed it. The broker's own reloads (SIGHUP and
// the file watcher: trust, CRLs, registry, policies, password files) arrive
// as audit events through Record and set reloadOK. The gateway's SIGHUP
// reload of the config file reports through ReloadResult: a config that
// did not parse, or a change that needs a restart, is remembered in
// cfgReloadErr and restartRequired until a SIGHUP reload applies
// everything. A later successful watcher reload of the broker's files does
// not clear it: the config on disk still is not what runs.

// ReloadResult records the outcome of a SIGHUP reload of the config file:
// err nil means everything was applied; restart names the top-level config
// sections that changed but need a restart (empty when none).
func (o *Observer) ReloadResult(err error, restart []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reloadAt = time.Now()
	if err == nil {
		o.cfgReloadErr, o.restartRequired = "", nil
		o.reloadOK, o.reloadError = true, ""
		return
	}
	o.cfgReloadErr = err.Error()
	o.restartRequired = slices.Clone(restart)
}

// reloadStateLocked is the verdict metrics and status report.
func (o *Observer) reloadStateLocked() ReloadStatus {
	s := ReloadStatus{OK: o.reloadOK && o.cfgReloadErr == "", At: o.reloadAt.UTC(), Error: o.reloadError,
		RestartRequired: slices.Clone(o.restartRequired)}
	if o.cfgReloadErr != "" {
		s.Error = o.cfgReloadErr
	}
	return s
}
