package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// SCCMSite is one SCCM site of AUTOPATCH_SCCM_SITES (docs/architecture.md
// §10.1).
type SCCMSite struct {
	// Code is the site code, as SCCM writes it (PS1).
	Code string
	// WinRM reaches the site server: its own endpoint, its own account or
	// AUTOPATCH_SCCM_USER/_PASSWORD's, and AUTOPATCH_SCCM_*'s
	// authentication, CA, timeout and certificate checking.
	WinRM WinRM
	// Workers is how many calls to the site one replica's jobs make at once.
	Workers int
}

// siteSettings are the settings of one site, AUTOPATCH_SCCM_<CODE>_*. They
// are not fields of Config because their names depend on the site codes;
// the README documents them in AUTOPATCH_SCCM_SITES's line.
type siteSettings struct {
	Endpoint string `env:"ENDPOINT"`
	User     string `env:"USER"`
	Password Secret `env:"PASSWORD"`
	Workers  int    `env:"WORKERS" default:"2"`
}

// siteCode is SCCM's rule for a site code: three letters or digits.
var siteCode = regexp.MustCompile(`^[A-Z0-9]{3}$`)

// siteFileKey matches a per-site key of the YAML file, before the sites
// are known (sccm_ps1_endpoint).
var siteFileKey = regexp.MustCompile(`^sccm_[a-z0-9]{3}_(endpoint|user|password|password_file|workers)$`)

// loadSites reads AUTOPATCH_SCCM_SITES and each site's settings into
// c.Sites. Without AUTOPATCH_SCCM_SITES, c.Sites stays empty and
// AUTOPATCH_SCCM_* is the only site, as before sites existed.
func (c *Config) loadSites(getenv func(string) string, file map[string]string) []error {
	var errs []error
	listed := map[string]bool{}
	if strings.TrimSpace(c.SCCMSites) != "" {
		for _, code := range strings.Split(c.SCCMSites, ",") {
			code = strings.TrimSpace(code)
			switch {
			case !siteCode.MatchString(code):
				errs = append(errs, fmt.Errorf("AUTOPATCH_SCCM_SITES=%q is invalid: %q is not a site code (three upper-case letters or digits, e.g. PS1)", c.SCCMSites, code))
				continue
			case listed[code]:
				errs = append(errs, fmt.Errorf("AUTOPATCH_SCCM_SITES=%q is invalid: %s is listed twice", c.SCCMSites, code))
				continue
			}
			listed[code] = true
			site, siteErrs := c.loadSite(code, getenv, file)
			errs = append(errs, siteErrs...)
			c.Sites = append(c.Sites, site)
		}
		if c.SCCM.Endpoint != "" {
			errs = append(errs, errors.New("AUTOPATCH_SCCM_ENDPOINT is set with AUTOPATCH_SCCM_SITES: give each site its AUTOPATCH_SCCM_<CODE>_ENDPOINT instead"))
		}
	}
	// A per-site key of the file whose site is not listed is a typo or a
	// forgotten site: refuse it as readYAML refuses unknown keys.
	var unknown []string
	for k := range file {
		if siteFileKey.MatchString(k) && !listed[strings.ToUpper(k[len("sccm_"):len("sccm_")+3])] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs = append(errs, fmt.Errorf("--config: settings of sites not in AUTOPATCH_SCCM_SITES: %s", strings.Join(unknown, ", ")))
	}
	return errs
}

// loadSite reads AUTOPATCH_SCCM_<code>_* as load reads the other settings.
func (c *Config) loadSite(code string, getenv func(string) string, file map[string]string) (SCCMSite, []error) {
	var s siteSettings
	var errs []error
	for _, setting := range walk(reflect.ValueOf(&s).Elem(), Prefix+"SCCM_"+code+"_") {
		raw, ok, err := lookup(setting, getenv, file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			raw = setting.Default
		}
		if err := set(setting, raw); err != nil {
			errs = append(errs, err)
		}
	}
	prefix := Prefix + "SCCM_" + code + "_"
	if s.Endpoint == "" {
		errs = append(errs, fmt.Errorf("%sENDPOINT is required: site %s's WinRM URL", prefix, code))
	} else if err := checkURL(s.Endpoint, "http", "https"); err != nil {
		errs = append(errs, fmt.Errorf("%sENDPOINT=%q is invalid: %w", prefix, s.Endpoint, err))
	}
	w := c.SCCM
	w.Endpoint = s.Endpoint
	if s.User != "" {
		w.User = s.User
	}
	if s.Password.IsSet() {
		w.Password = s.Password
	}
	return SCCMSite{Code: code, WinRM: w, Workers: s.Workers}, errs
}

// validateSitesServe checks that serve can reach every site.
func (c *Config) validateSitesServe() []error {
	var errs []error
	for _, s := range c.Sites {
		if s.WinRM.User == "" || !s.WinRM.Password.IsSet() {
			errs = append(errs, fmt.Errorf("AUTOPATCH_SCCM_%[1]s_USER and AUTOPATCH_SCCM_%[1]s_PASSWORD (or AUTOPATCH_SCCM_USER and AUTOPATCH_SCCM_PASSWORD) are required: the account autopatch runs ConfigMgr cmdlets as at site %[1]s", s.Code))
		}
	}
	return errs
}

// SiteCodes are the configured site codes in the order listed; nil when
// AUTOPATCH_SCCM_SITES is not set (the one site of AUTOPATCH_SCCM_*).
func (c *Config) SiteCodes() []string {
	var out []string
	for _, s := range c.Sites {
		out = append(out, s.Code)
	}
	return out
}
