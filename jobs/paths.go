package jobs

// paths.go: where a note sends a person. A tenant's API lives under
// /t/<name>/ and its CLI commands take --tenant <name>
// (docs/architecture.md §10.2); a note that printed the default tenant's
// path would send a customer's on-call operator to a 404.

// apiPath is the path of the tenant's API endpoint p (which starts with
// /api/v1/).
func (d *Deps) apiPath(p string) string {
	if d.Tenant == "" {
		return p
	}
	return "/t/" + d.Tenant + p
}

// cli is the autopatch command line for the tenant: "autopatch report",
// with --tenant for a file tenant.
func (d *Deps) cli(command string) string {
	if d.Tenant == "" {
		return "autopatch " + command
	}
	return "autopatch " + command + " --tenant " + d.Tenant
}
