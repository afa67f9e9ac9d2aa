package estate

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
	"github.com/autopatch/autopatch/connectors/winrm/wsmansim"
)

// site is one of Options.Sites: a site server of its own, as a real estate
// of several primary sites has (docs/architecture.md §10.1).
type site struct {
	site  *sccmsim.Site
	wsman *wsmansim.Server
	srv   *http.Server
	url   string
	// down makes its listener answer 503 (SetSiteDown).
	down atomic.Bool
}

// buildExtraSite makes the site code of Options.Sites: the seed's update
// groups, the schedules' collections of SiteCollections.
func buildExtraSite(opts Options, code string) (*site, error) {
	if code == opts.Seed.SiteCode || (opts.Seed.SiteCode == "" && code == sccmsim.DefaultSiteCode) {
		return nil, fmt.Errorf("estate: site %s is the seed's site; list only the further sites", code)
	}
	x := &site{site: sccmsim.New(sccmsim.Options{SiteCode: code, Now: opts.Now, Logger: opts.Logger})}
	for _, g := range opts.Seed.UpdateGroups {
		if err := x.site.AddUpdateGroup(g); err != nil {
			return nil, fmt.Errorf("estate: site %s: %w", code, err)
		}
	}
	for _, c := range opts.SiteCollections[code] {
		if err := x.site.AddCollection(c, 0); err != nil {
			return nil, fmt.Errorf("estate: site %s: schedule collection: %w", code, err)
		}
	}
	x.wsman = wsmansim.New(wsmansim.Options{
		User: opts.User, Password: opts.Password, Latency: opts.Seed.Latency, Logger: opts.Logger,
		Exec: wsmansim.PowerShell(func(ctx context.Context, script string, data []byte) ([]byte, string, int) {
			if !x.site.Handles(script) {
				return nil, sccmsim.NotATemplateError(), 1
			}
			return x.site.Run(ctx, script, data)
		}),
	})
	return x, nil
}

// startSite serves x on a listener of its own, with the main listener's
// scheme and certificate.
func (e *Estate) startSite(ctx context.Context, x *site, scheme, advertised string, errorLog *log.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(e.opts.Host, "0"))
	if err != nil {
		return fmt.Errorf("estate: site %s: winrm listener: %w", x.site.SiteCode(), err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/wsman", func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() || x.down.Load() {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		x.wsman.ServeHTTP(w, r)
	})
	x.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog, TLSConfig: e.winrmSrv.TLSConfig}
	if x.srv.TLSConfig != nil {
		ln = tls.NewListener(ln, x.srv.TLSConfig)
	}
	x.url = scheme + "://" + net.JoinHostPort(advertised, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + "/wsman"
	go e.serve("winrm "+x.site.SiteCode(), x.srv, ln)
	e.logger.Info("estate: listening", "site", x.site.SiteCode(), "winrm", x.url)
	return nil
}

func (e *Estate) extraSite(code string) *site {
	for _, x := range e.sites {
		if x.site.SiteCode() == code {
			return x
		}
	}
	return nil
}

// Site returns the simulated site with code: the seed's or one of
// Options.Sites; nil for none.
func (e *Estate) Site(code string) *sccmsim.Site {
	if code == e.sccm.SiteCode() {
		return e.sccm
	}
	if x := e.extraSite(code); x != nil {
		return x.site
	}
	return nil
}

// SiteEndpoint is the WinRM URL of the site server of the site with code.
func (e *Estate) SiteEndpoint(code string) string {
	if x := e.extraSite(code); x != nil {
		return x.url
	}
	return e.winrmURL
}

// SetSiteDown makes the WinRM listener of one of Options.Sites answer 503
// (down true) until called with false: one site server is unreachable
// while the others answer.
func (e *Estate) SetSiteDown(code string, down bool) {
	if x := e.extraSite(code); x != nil {
		x.down.Store(down)
	}
}
