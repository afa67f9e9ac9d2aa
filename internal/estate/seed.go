package estate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/autopatch/autopatch/connectors/sccm/sccmsim"
)

// Seed is the simulated estate's starting content (docs/architecture.md §4.5):
//
//	site_code: PS1                      # optional, default PS1
//	update_groups: ["2026-12 Servers"]
//	collections:
//	  - "Patch - Extra"                 # a name, or
//	  - {name: "Servers with MW", maintenance_windows: 1}
//	latency: 500ms                      # per WinRM call
//	devices:
//	  - {name: SQL01}                                   # installs, succeeds
//	  - {name: SQL02, outcome: "error 0x80240022"}      # fails with that code
//	  - {name: WEB01, outcome: silent}                  # never reports
//	  - {name: APP01, outcome: "error 0x8024402C then success"}
//	  - {name: APP02, outcome: "in progress"}           # never finishes
//	  - {name: DB09, collections: ["Patch - Extra"]}    # already a member
//	  - {name: LAB01, scom: false}                      # not monitored by SCOM
//	scom_domain: corp.example           # optional, default corp.example
//	change_requests:                    # ServiceNow records a tester's webhooks name
//	  - {number: CHG0030001}            # sys_id: SysIDOf(number) unless given
//	request_items:
//	  - {number: RITM0010001, sys_id: 0badf00d0badf00d0badf00d0badf00d}
//
// Every device is also a Windows Computer of the simulated SCOM management
// group, as "<name>.<scom_domain>" with NetBIOS name <name> (a name that has a
// dot already is taken as the FQDN), unless it says scom: false.
//
// Unknown keys are an error, so a typo does not silently seed nothing.
type Seed struct {
	SiteCode     string           `yaml:"site_code"`
	UpdateGroups []string         `yaml:"update_groups"`
	Collections  []SeedCollection `yaml:"collections"`
	Latency      time.Duration    `yaml:"latency"`
	Devices      []SeedDevice     `yaml:"devices"`
	// SCOMDomain is the DNS domain of the devices' SCOM principal names;
	// empty means DefaultSCOMDomain.
	SCOMDomain string `yaml:"scom_domain"`
	// ChangeRequests and RequestItems are records of the simulated
	// ServiceNow, so that the work notes of webhooks a tester sends about
	// them (autopatch send) land somewhere instead of answering 404.
	ChangeRequests []SeedRecord `yaml:"change_requests"`
	RequestItems   []SeedRecord `yaml:"request_items"`
}

// SeedRecord is a ServiceNow record of the seed.
type SeedRecord struct {
	Number string `yaml:"number"`
	// SysID is the record's sys_id; empty means SysIDOf(Number).
	SysID string `yaml:"sys_id"`
}

// ID returns the record's sys_id: the one given, or SysIDOf(Number).
func (r SeedRecord) ID() string {
	if r.SysID != "" {
		return r.SysID
	}
	return SysIDOf(r.Number)
}

// SysIDOf is the sys_id the simulated estate gives a seeded record that
// names none: 32 hex digits derived from its number, so that `autopatch
// send` finds the same one without being told.
func SysIDOf(number string) string {
	sum := sha256.Sum256([]byte("autopatch-sim:" + number))
	return hex.EncodeToString(sum[:16])
}

// DefaultSCOMDomain is the domain of the devices' SCOM principal names when
// the seed names none.
const DefaultSCOMDomain = "corp.example"

// SeedCollection is a device collection of the seed. In YAML it is either a
// plain name or a mapping.
type SeedCollection struct {
	Name string `yaml:"name"`
	// MaintenanceWindows is the number of the collection's own maintenance windows.
	MaintenanceWindows int `yaml:"maintenance_windows"`
}

// UnmarshalYAML accepts a scalar name as well as the mapping form.
func (c *SeedCollection) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		c.Name = n.Value
		c.MaintenanceWindows = 0
		return nil
	}
	type plain SeedCollection
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*c = SeedCollection(p)
	return nil
}

// SeedDevice is a device of the seed.
type SeedDevice struct {
	Name string `yaml:"name"`
	// Outcome is what the device does with a deployment: "success" (default),
	// "error 0x…", "silent", "error 0x… then success" or "in progress"
	// (see sccmsim.ParseOutcome).
	Outcome string `yaml:"outcome"`
	// Collections the device is already a direct member of; they are created
	// if the seed does not list them.
	Collections []string `yaml:"collections"`
	// SCOM false leaves the device out of the SCOM management group, so an
	// alert for it is answered "unknown device". Nil means true.
	SCOM *bool `yaml:"scom"`
}

// InSCOM reports whether the device is a Windows Computer in SCOM.
func (d SeedDevice) InSCOM() bool { return d.SCOM == nil || *d.SCOM }

// SCOMNames returns the device's SCOM principal name (FQDN) and NetBIOS name
// in domain: a name with a dot is the FQDN already.
func (d SeedDevice) SCOMNames(domain string) (principal, netbios string) {
	if domain == "" {
		domain = DefaultSCOMDomain
	}
	if host, _, ok := strings.Cut(d.Name, "."); ok {
		return d.Name, host
	}
	return d.Name + "." + domain, d.Name
}

// ParseSeed reads a seed from YAML and checks it.
func ParseSeed(b []byte) (Seed, error) {
	var s Seed
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return Seed{}, fmt.Errorf("estate: seed: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Seed{}, err
	}
	return s, nil
}

// LoadSeed reads and checks a seed file.
func LoadSeed(path string) (Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("estate: seed: %w", err)
	}
	s, err := ParseSeed(b)
	if err != nil {
		return Seed{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return s, nil
}

// Validate reports the first problem of a seed: empty or repeated names,
// outcomes that do not parse, a negative latency.
func (s Seed) Validate() error {
	if s.Latency < 0 {
		return fmt.Errorf("estate: seed: latency %s is negative", s.Latency)
	}
	for i, g := range s.UpdateGroups {
		if g == "" {
			return fmt.Errorf("estate: seed: update_groups[%d] is empty", i)
		}
	}
	for i, c := range s.Collections {
		if c.Name == "" {
			return fmt.Errorf("estate: seed: collections[%d] has no name", i)
		}
		if c.MaintenanceWindows < 0 {
			return fmt.Errorf("estate: seed: collection %q: maintenance_windows is negative", c.Name)
		}
	}
	if strings.ContainsAny(s.SCOMDomain, " \t\r\n") || strings.HasPrefix(s.SCOMDomain, ".") {
		return fmt.Errorf("estate: seed: scom_domain %q is not a DNS domain", s.SCOMDomain)
	}
	seen := map[string]bool{}
	for i, d := range s.Devices {
		if d.Name == "" {
			return fmt.Errorf("estate: seed: devices[%d] has no name", i)
		}
		if seen[d.Name] {
			return fmt.Errorf("estate: seed: device %q appears twice", d.Name)
		}
		seen[d.Name] = true
		if _, err := sccmsim.ParseOutcome(d.Outcome); err != nil {
			return fmt.Errorf("estate: seed: device %q: %w", d.Name, err)
		}
		for _, c := range d.Collections {
			if c == "" {
				return fmt.Errorf("estate: seed: device %q: empty collection name", d.Name)
			}
		}
	}
	for key, records := range map[string][]SeedRecord{"change_requests": s.ChangeRequests, "request_items": s.RequestItems} {
		ids := map[string]bool{}
		for i, r := range records {
			if r.Number == "" {
				return fmt.Errorf("estate: seed: %s[%d] has no number", key, i)
			}
			if !isSysID(r.ID()) {
				return fmt.Errorf("estate: seed: %s[%d] %q: sys_id %q is not 32 lowercase hex digits", key, i, r.Number, r.SysID)
			}
			if ids[r.ID()] {
				return fmt.Errorf("estate: seed: %s[%d] %q: sys_id %s appears twice", key, i, r.Number, r.ID())
			}
			ids[r.ID()] = true
		}
	}
	return nil
}

func isSysID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
