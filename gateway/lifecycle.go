package gateway

// Lifecycle tells the caller what the running gateway is doing, so that
// `edgegw run` can speak systemd's notify protocol (Type=notify: READY,
// RELOADING, STOPPING, WATCHDOG) without the gateway knowing about systemd.
// Every field may be nil. Callbacks run on the goroutine that called Run and
// must return quickly.
type Lifecycle struct {
	// Ready is called once per Run when the listeners accept connections and
	// the queue (if any) is open. healthy returns nil while the broker is
	// serving and the queue has not failed (the /healthz verdict); it is safe
	// from any goroutine, also after Run returns (then it reports an error).
	Ready func(healthy func() error)
	// Reloading is called when a SIGHUP reload begins, Reloaded when it has
	// ended: err nil means everything was applied; otherwise the running
	// configuration was kept in whole or in part and err says why.
	Reloading func()
	Reloaded  func(err error)
	// Stopping is called when shutdown begins: the context ended or the
	// gateway failed while running.
	Stopping func()
}

// SetLifecycle installs the callbacks; call it before Run.
func (g *Gateway) SetLifecycle(l Lifecycle) { g.lc = l }

func (l *Lifecycle) ready(healthy func() error) {
	if l.Ready != nil {
		l.Ready(healthy)
	}
}

func (l *Lifecycle) stopping() {
	if l.Stopping != nil {
		l.Stopping()
	}
}

// reloadOnSignal is the SIGHUP path of serve: Reload between the
// Reloading and Reloaded callbacks.
func (g *Gateway) reloadOnSignal() {
	if g.lc.Reloading != nil {
		g.lc.Reloading()
	}
	err := g.Reload()
	if g.lc.Reloaded != nil {
		g.lc.Reloaded(err)
	}
}
