package observe

// The status page: GET / on the metrics listener, read-only, one HTML
// document with inline CSS and a few lines of inline JavaScript (the device
// search), no framework and no external asset, so it works on a laptop with
// no Internet. It shows the upstream, the routes (depth, oldest message,
// rate, drops, dead letters), every registered device online or not (with
// search), certificate expiry, recent denials and the last reload.
//
// Who may see it: on a loopback metrics address without metrics.tls,
// anyone on the Pi. With metrics.tls the listener asks for a client
// certificate from the site CA; the page then needs a verified certificate
// whose thing the registry lists with type "operator" (`edgegw pki issue
// LAPTOP --type operator`), or, with metrics.basic_auth_file, a user and
// password from that bcrypt file. On a LAN address without metrics.tls the
// page is refused (403) and says what to configure.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edgegw/gateway/broker"
	"github.com/edgegw/edgegw/gateway/broker/listen"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/presence"
	"github.com/edgegw/edgegw/hw"
)

// ThingTypes tells the status page whether a certificate's thing is an
// operator; *broker.Broker satisfies it.
type ThingTypes interface {
	ThingType(name string) (typ string, listed bool)
}

var _ ThingTypes = (*broker.Broker)(nil)

// pageGuard is the status page's access rule, built at Start.
type pageGuard struct {
	open      bool             // loopback without TLS
	tls       bool             // the listener verifies client certificates
	passwords listen.Passwords // basic auth; nil without basic_auth_file
	key       hw.Key           // the metrics TLS key, closed at Stop
}

// metricsTLS wraps ln in TLS when metrics.tls is set and prepares the page's
// access rule.
func (o *Observer) metricsTLS(ln net.Listener) (net.Listener, error) {
	mc := o.cfg.Metrics
	o.guard = &pageGuard{open: mc.StatusPageOpen()}
	if mc.BasicAuthFile != "" {
		pw, err := listen.LoadPasswords(mc.BasicAuthFile)
		if err != nil {
			return nil, fmt.Errorf("metrics.basic_auth_file: %w", err)
		}
		o.guard.passwords = pw
	}
	t := mc.TLS
	if t == nil {
		return ln, nil
	}
	pem, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("metrics.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("metrics.tls.ca %s: no PEM certificate in it", t.CA)
	}
	chain, err := listen.ReadCertChain(t.Cert)
	if err != nil {
		return nil, fmt.Errorf("metrics.tls.cert: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := hw.Open(ctx, t.Key, hw.WithStateDir(o.cfg.StateDir))
	if err != nil {
		return nil, fmt.Errorf("metrics.tls.key: %w", err)
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	auth := tls.RequireAndVerifyClientCert
	if o.guard.passwords != nil {
		auth = tls.VerifyClientCertIfGiven // a password may stand in for the certificate
	}
	o.guard.tls, o.guard.key = true, key
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: auth}), nil
}

// pageAccess says whether r may see the page; when not, the status code and
// what to tell the visitor.
func (o *Observer) pageAccess(r *http.Request) (int, string) {
	g := o.guard
	switch {
	case g == nil:
		return http.StatusServiceUnavailable, "starting"
	case g.open:
		return http.StatusOK, ""
	case !g.tls:
		return http.StatusForbidden, "The status page is not served on a LAN address without TLS: set metrics.tls (the site CA, " +
			"server certificate and key) and give the engineer's laptop a certificate with `edgegw pki issue LAPTOP --type operator`, " +
			"or bind metrics.address to 127.0.0.1."
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if o.things != nil {
			if typ, listed := o.things.ThingType(cn); listed && typ == config.OperatorType {
				return http.StatusOK, ""
			}
		}
		if g.passwords == nil {
			return http.StatusForbidden, fmt.Sprintf("Certificate CN=%s is not a thing of type %q in the registry: issue one with `edgegw pki issue LAPTOP --type operator`.", cn, config.OperatorType)
		}
	}
	if g.passwords != nil {
		if user, pass, ok := r.BasicAuth(); ok && g.passwords.Check(user, []byte(pass)) == nil {
			return http.StatusOK, ""
		}
		return http.StatusUnauthorized, "A user name and password from metrics.basic_auth_file, or an operator certificate, is required."
	}
	return http.StatusForbidden, "An operator certificate from the site CA is required."
}

// pageData is what the template renders.
type pageData struct {
	Status      Status
	Generated   time.Time
	Devices     []pageDevice
	Online      int
	Offline     int
	NeverSeen   int
	Unlisted    int
	HasPresence bool
	Routes      []pageRoute
}

type pageDevice struct {
	presence.Device
	LastSeenAgo  string
	SinceAgo     string
	CertDays     string
	CertWarn     bool
	SearchString string
}

type pageRoute struct {
	RouteStatus
	Age   string
	Drops uint64
}

func (o *Observer) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:")
	if code, why := o.pageAccess(r); code != http.StatusOK {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="edgegw status", charset="UTF-8"`)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprintln(w, why)
		return
	}
	now := time.Now()
	d := pageData{Status: o.status(o.admin), Generated: now.UTC()}
	queues := []*QueueStatus{d.Status.Queue}
	prefix := []string{""}
	if len(d.Status.Bridges) > 1 { // several bridges: every queue, routes named bridge/route
		queues, prefix = nil, nil
		for _, b := range d.Status.Bridges {
			queues, prefix = append(queues, b.Queue), append(prefix, b.Name+"/")
		}
	}
	for qi, q := range queues {
		if q == nil {
			continue
		}
		for _, rt := range q.Routes {
			rt.Name = prefix[qi] + rt.Name
			pr := pageRoute{RouteStatus: rt, Age: "-"}
			if rt.OldestAge > 0 {
				pr.Age = shortDur(time.Duration(rt.OldestAge * float64(time.Second)))
			}
			for _, n := range rt.Drops {
				pr.Drops += n
			}
			d.Routes = append(d.Routes, pr)
		}
	}
	if o.presence != nil {
		d.HasPresence = true
		devs := o.presence.Devices()
		order := map[presence.State]int{presence.Offline: 0, presence.NeverSeen: 1, presence.Online: 2, presence.Unlisted: 3}
		slices.SortStableFunc(devs, func(a, b presence.Device) int { return order[a.State] - order[b.State] })
		for _, dv := range devs {
			pd := pageDevice{Device: dv, LastSeenAgo: "never", SinceAgo: "-", CertDays: "-"}
			if !dv.LastSeen.IsZero() {
				pd.LastSeenAgo = shortDur(now.Sub(dv.LastSeen)) + " ago"
			}
			if !dv.Since.IsZero() {
				pd.SinceAgo = shortDur(now.Sub(dv.Since))
			}
			if !dv.CertNotAfter.IsZero() {
				days := dv.CertNotAfter.Sub(now).Hours() / 24
				pd.CertDays, pd.CertWarn = fmt.Sprintf("%.0f days", days), days < 30
			}
			pd.SearchString = strings.ToLower(strings.Join([]string{dv.Thing, dv.Type, string(dv.State), dv.LastRemote}, " "))
			switch dv.State {
			case presence.Online:
				d.Online++
			case presence.Offline:
				d.Offline++
			case presence.NeverSeen:
				d.NeverSeen++
			case presence.Unlisted:
				d.Unlisted++
			}
			d.Devices = append(d.Devices, pd)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusPage.Execute(w, &d); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		o.log.Warn("rendering the status page", "err", err)
	}
}

func shortDur(d time.Duration) string {
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"rfc3339": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	},
}).Parse(statusPageHTML))

const statusPageHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgegw {{.Status.Site}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 16px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
main{padding:12px 16px;display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(420px,1fr))}
section{background:#fff;border-radius:6px;padding:10px 14px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e6e8eb;white-space:nowrap}
th{font-weight:600;color:#555}
.ok{color:#137333}.bad{color:#b3261e;font-weight:600}.warn{color:#a56200}
.pill{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px}
.online .pill{background:#d7f5dd;color:#137333}.offline .pill{background:#fde0dd;color:#b3261e}
.never_seen .pill{background:#eee;color:#555}.unlisted .pill{background:#e3e8fd;color:#2a4bb3}
.counts span{margin-right:14px}
input[type=search]{width:280px;padding:4px 8px;margin-bottom:8px}
.muted{color:#777}
</style></head>
<body>
<header><h1>edgegw · {{.Status.Site}}</h1>
<span>health: <b id="health" class="{{if eq .Status.Health.Status "ok"}}ok{{else}}bad{{end}}">{{.Status.Health.Status}}</b></span>
<span>version {{.Status.Version}}</span><span class="muted">page generated {{rfc3339 .Generated}} (reload to refresh)</span></header>
<main>
<section><h2>Upstream</h2>
{{with .Status.Upstream}}<p id="upstream" class="{{if .Connected}}ok{{else}}bad{{end}}">{{if .Connected}}connected since {{rfc3339 .ConnectedSince}}{{else}}DOWN{{end}} · {{.URL}}</p>
<p>{{.Sent}} sent, {{.Acked}} acked, {{.DeadLettered}} dead-lettered, {{.Reconnects}} reconnects, {{printf "%.1f" .Rate}} msg/s</p>
{{if .LastError}}<p class="bad">last error: {{.LastError}}</p>{{end}}
{{else}}<p id="upstream" class="muted">no bridge configured: local broker only</p>{{end}}
</section>
<section><h2>Reload and certificates</h2>
<p id="reload">{{if .Status.Reload.OK}}<span class="ok">last reload OK</span>{{else}}<span class="bad">last reload FAILED</span>: {{.Status.Reload.Error}}{{end}} at {{rfc3339 .Status.Reload.At}}</p>
<table id="certs"><tr><th>certificate</th><th>expires</th><th>days left</th></tr>
{{range .Status.Certs}}<tr><td>{{.Cert}}</td><td>{{rfc3339 .NotAfter}}</td><td class="{{if .Error}}bad{{else if lt .Days 30.0}}warn{{end}}">{{if .Error}}{{.Error}}{{else}}{{printf "%.0f" .Days}}{{end}}</td></tr>
{{else}}<tr><td colspan="3" class="muted">no TLS certificates configured</td></tr>{{end}}</table>
</section>
<section class="wide"><h2>Routes</h2>
<table id="routes"><tr><th>route</th><th>depth</th><th>oldest</th><th>rate</th><th>in flight</th><th>drops</th><th>dead letters</th></tr>
{{range .Routes}}<tr><td>{{.Name}}</td><td>{{.Depth}}</td><td>{{.Age}}</td><td>{{printf "%.1f" .Rate}}/s</td><td>{{.InFlight}}</td><td class="{{if .Drops}}warn{{end}}">{{.Drops}}</td><td class="{{if .DeadLetters}}bad{{end}}">{{.DeadLetters}}</td></tr>
{{else}}<tr><td colspan="7" class="muted">no queue</td></tr>{{end}}</table>
</section>
<section class="wide"><h2>Devices</h2>
{{if .HasPresence}}<p class="counts"><span>online <b id="online-count">{{.Online}}</b></span><span>offline <b id="offline-count" class="{{if .Offline}}bad{{end}}">{{.Offline}}</b></span><span>never seen <b id="never-seen-count">{{.NeverSeen}}</b></span><span>unlisted <b id="unlisted-count">{{.Unlisted}}</b></span></p>
<input type="search" id="search" placeholder="search name, type, state, address" autocomplete="off">
<span id="shown" class="muted"></span>
<table id="devices"><thead><tr><th>thing</th><th>type</th><th>state</th><th>for</th><th>last seen</th><th>last address</th><th>certificate</th></tr></thead><tbody>
{{range .Devices}}<tr class="device {{.State}}" data-thing="{{.Thing}}" data-search="{{.SearchString}}"><td>{{.Thing}}</td><td>{{.Type}}</td><td><span class="pill">{{.State}}</span></td><td>{{.SinceAgo}}</td><td title="{{rfc3339 .LastSeen}}">{{.LastSeenAgo}}</td><td>{{.LastRemote}}</td><td class="{{if .CertWarn}}warn{{end}}">{{.CertDays}}</td></tr>
{{end}}</tbody></table>
{{else}}<p class="muted">device presence is not kept</p>{{end}}
</section>
<section class="wide"><h2>Recent denials</h2>
<table id="denials"><tr><th>time</th><th>device</th><th>action</th><th>resource</th><th>statement</th></tr>
{{range .Status.Denials}}<tr><td>{{rfc3339 .Time}}</td><td>{{.Device}}</td><td>{{.Action}}</td><td>{{.Resource}}</td><td>{{.Statement}}</td></tr>
{{else}}<tr><td colspan="5" class="muted">none recently</td></tr>{{end}}</table>
</section>
</main>
<script>
(function(){
  var box=document.getElementById('search');
  if(!box)return;
  var rows=document.querySelectorAll('#devices tr.device'), shown=document.getElementById('shown');
  function filter(){
    var q=box.value.trim().toLowerCase(), n=0;
    for(var i=0;i<rows.length;i++){
      var hit=q===''||rows[i].getAttribute('data-search').indexOf(q)>=0;
      rows[i].style.display=hit?'':'none'; if(hit)n++;
    }
    shown.textContent=q===''?'':n+' shown';
  }
  box.addEventListener('input',filter);
  var q=new URLSearchParams(location.search).get('q'); if(q){box.value=q;}
  filter();
})();
</script>
</body></html>
`
